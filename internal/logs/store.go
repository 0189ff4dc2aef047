package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Options configure a Store. Zero values pick the defaults noted.
type Options struct {
	// Dir holds the logs: <Dir>/<function>/<stream>/<segment>.log.
	Dir string
	// MaxAge is how long lines are kept (by segment); 0 keeps them
	// until MaxBytes pushes them out.
	MaxAge time.Duration
	// MaxBytes caps the stored bytes of one function (oldest segments go
	// first), so that one function's output never evicts another's; 0 is
	// unlimited.
	MaxBytes int64
	// RateLimit is how many bytes per second one environment may log
	// (token bucket of Burst bytes); beyond it lines are dropped and a
	// logsDropped record says so. 0 is unlimited.
	RateLimit float64
	// Burst is the rate limit's bucket size (default max(2×RateLimit,
	// 1 MiB); never below one maximal line).
	Burst int
	// QueueBytes bounds the lines one environment has waiting for the disk
	// (default 4 MiB); beyond it lines are dropped.
	QueueBytes int
	// TotalQueueBytes bounds the lines all environments together have
	// waiting for the disk (default 64 MiB), so that many chatty
	// environments cannot add up to unbounded memory either.
	TotalQueueBytes int64
	// SegmentBytes is the size at which a stream's file is rotated
	// (default MaxBytes/8 within [64 KiB, 16 MiB]; 16 MiB when MaxBytes
	// is unlimited).
	SegmentBytes int64
	// PruneInterval is how often retention runs in the background
	// (default one minute); negative disables the background pass
	// (Prune still works).
	PruneInterval time.Duration
	// WriteDelay is how long a stream gathers lines before its writer
	// wakes to write them (default 50 ms; negative: at once). Waking a
	// goroutine and writing a file per line was, under load, most of what
	// logging an invocation cost; with the delay one wake and one write
	// carry an invocation's START, END and REPORT lines, or many
	// invocations' when they come fast. Queries, Flush and Close write at
	// once, and a queue past a quarter of QueueBytes does not wait.
	WriteDelay time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Store keeps the log streams of every function on disk, applies
// retention, and serves queries and live tails. Safe for concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger
	last atomic.Int64 // last time stamp handed out
	// queued counts the bytes of every stream's queue.
	queued atomic.Int64

	mu      sync.Mutex
	active  map[string]bool    // segment files open for writing
	streams map[*Stream]string // open streams and their directories
	subs    map[string]map[*subscriber]struct{}
	closed  bool // followers closed
	// firsts caches the time stamp of each segment's first record (a
	// segment's first record never changes), by path, for Streams.
	firsts map[string]int64
	// lasts caches the time stamp of each segment's last record, for the
	// size it was read at.
	lasts   map[string]sizedStamp
	stop    chan struct{}
	wg      sync.WaitGroup
	pruneMu sync.Mutex
}

// Open returns a Store over opts.Dir and starts its retention pass.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("log store needs a directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = 4 << 20
	}
	if opts.TotalQueueBytes <= 0 {
		opts.TotalQueueBytes = 64 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
		if opts.MaxBytes > 0 {
			opts.SegmentBytes = min(max(opts.MaxBytes/8, 64<<10), 16<<20)
		}
	}
	if opts.RateLimit > 0 {
		if opts.Burst <= 0 {
			opts.Burst = max(int(2*opts.RateLimit), 1<<20)
		}
		opts.Burst = max(opts.Burst, maxLine+recordOverhead+1)
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = time.Minute
	}
	if opts.WriteDelay == 0 {
		opts.WriteDelay = 50 * time.Millisecond
	}
	s := &Store{
		opts: opts, log: opts.Logger,
		active: map[string]bool{}, streams: map[*Stream]string{},
		subs: map[string]map[*subscriber]struct{}{}, firsts: map[string]int64{}, lasts: map[string]sizedStamp{}, stop: make(chan struct{}),
	}
	if opts.PruneInterval > 0 && (opts.MaxAge > 0 || opts.MaxBytes > 0) {
		s.wg.Add(1)
		go s.janitor()
	}
	return s, nil
}

// NewStore returns a Store under dir with default options.
func NewStore(dir string, logger *slog.Logger) (*Store, error) {
	return Open(Options{Dir: dir, Logger: logger})
}

// validFunction matches function names (LAMBDA_SURFACE §0), which are
// directory names here.
var validFunction = regexp.MustCompile(`^[A-Za-z0-9_-]{1,140}$`)

// ValidFunction reports whether name can name a function's logs.
func ValidFunction(name string) bool { return validFunction.MatchString(name) }

// validStream accepts slash-separated names whose components are safe
// directory names.
func validStream(name string) bool {
	if name == "" || len(name) > 512 {
		return false
	}
	parts := strings.Split(name, "/")
	if len(parts) > 8 {
		return false
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "\x00\\") {
			return false
		}
	}
	return true
}

// Stream opens the named stream of a function for appending. The stream
// name follows Lambda's "YYYY/MM/DD/[$LATEST]<hex>" and maps to the
// directory <Dir>/<function>/YYYY/MM/DD/[$LATEST]<hex>.
func (s *Store) Stream(function, name string) (*Stream, error) {
	if !ValidFunction(function) {
		return nil, fmt.Errorf("invalid function name %q for a log stream", function)
	}
	if !validStream(name) {
		return nil, fmt.Errorf("invalid log stream name %q", name)
	}
	// The directory is made by the stream's writer before its first
	// segment (see Stream.prepare), off the cold start's path.
	dir := filepath.Join(s.opts.Dir, function, filepath.FromSlash(name))
	st := &Stream{
		store: s, function: function, name: name, dir: dir,
		wake: make(chan struct{}, 1), stopped: make(chan struct{}),
	}
	if s.opts.RateLimit > 0 {
		st.limiter = rate.NewLimiter(rate.Limit(s.opts.RateLimit), s.opts.Burst)
	}
	if s.opts.WriteDelay > 0 {
		st.delay = time.AfterFunc(time.Hour, st.kick)
		st.delay.Stop()
	}
	s.mu.Lock()
	s.streams[st] = dir
	s.mu.Unlock()
	go st.run()
	return st, nil
}

// stamp returns a unique, increasing time stamp no earlier than t.
func (s *Store) stamp(t time.Time) int64 {
	n := t.UnixNano()
	for {
		old := s.last.Load()
		v := max(n, old+1)
		if s.last.CompareAndSwap(old, v) {
			return v
		}
	}
}

func (s *Store) setActive(path string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.active[path] = true
	} else {
		delete(s.active, path)
	}
}

func (s *Store) forget(st *Stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
}

// flushFunction waits (up to a short bound) until the open streams of fn
// have written what was queued, so a query sees lines just logged.
func (s *Store) flushFunction(fn string) {
	s.flushOpen(func(st *Stream) bool { return st.function == fn })
}

// flushOpen has every open stream that match selects write what it has
// queued, all at once, and waits (up to a short bound) until they have.
func (s *Store) flushOpen(match func(*Stream) bool) {
	s.mu.Lock()
	var open []*Stream
	for st := range s.streams {
		if match(st) {
			open = append(open, st)
		}
	}
	s.mu.Unlock()
	targets := make([]uint64, len(open))
	for i, st := range open {
		targets[i] = st.target()
		st.kick()
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for i, st := range open {
		st.waitWritten(targets[i], deadline)
	}
}

func (s *Store) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Prune(); err != nil {
				s.log.Warn("log retention", "err", err)
			}
		}
	}
}

// segment is one stored segment file.
// sizedStamp is a segment's last record's stamp, read when the segment
// had size bytes.
type sizedStamp struct{ size, nanos int64 }

type segment struct {
	path   string
	size   int64
	mod    time.Time
	active bool
}

// segments lists a function's segment files.
func (s *Store) segments(fn string) ([]segment, error) {
	root := filepath.Join(s.opts.Dir, fn)
	var out []segment
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if _, ok := segmentNumber(d.Name()); !ok {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // deleted meanwhile
		}
		out = append(out, segment{path: path, size: info.Size(), mod: info.ModTime()})
		return nil
	})
	s.mu.Lock()
	for i := range out {
		out[i].active = s.active[out[i].path]
	}
	s.mu.Unlock()
	return out, err
}

// Functions lists the functions that have stored logs.
func (s *Store) Functions() ([]string, error) {
	// A new stream's directory is made by its writer.
	s.flushOpen(func(*Stream) bool { return true })
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && ValidFunction(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Prune applies retention to every function: segments older than MaxAge
// go, then the oldest segments of a function beyond MaxBytes. Segments
// being written are kept. Empty directories of closed streams are removed.
func (s *Store) Prune() error {
	fns, err := s.Functions()
	if err != nil {
		return err
	}
	var errs []error
	for _, fn := range fns {
		if err := s.prune(fn, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// enforceSize applies the size limit to one function.
func (s *Store) enforceSize(fn string) {
	if s.opts.MaxBytes <= 0 {
		return
	}
	if err := s.prune(fn, false); err != nil {
		s.log.Warn("log retention", "function", fn, "err", err)
	}
}

func (s *Store) prune(fn string, full bool) error {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	segs, err := s.segments(fn)
	if err != nil {
		return err
	}
	sort.Slice(segs, func(i, j int) bool {
		if !segs[i].mod.Equal(segs[j].mod) {
			return segs[i].mod.Before(segs[j].mod)
		}
		return segs[i].path < segs[j].path
	})
	var total int64
	for _, sg := range segs {
		total += sg.size
	}
	var cutoff time.Time
	if s.opts.MaxAge > 0 {
		cutoff = s.opts.Now().Add(-s.opts.MaxAge)
	}
	for _, sg := range segs {
		if sg.active {
			continue
		}
		old := !cutoff.IsZero() && sg.mod.Before(cutoff)
		big := s.opts.MaxBytes > 0 && total > s.opts.MaxBytes
		if !old && !big {
			continue
		}
		if err := os.Remove(sg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		s.mu.Lock()
		delete(s.firsts, sg.path)
		delete(s.lasts, sg.path)
		s.mu.Unlock()
		total -= sg.size
	}
	if full {
		s.removeEmptyDirs(filepath.Join(s.opts.Dir, fn))
	}
	return nil
}

// removeEmptyDirs removes the empty directories under (and including) root
// that no open stream uses.
func (s *Store) removeEmptyDirs(root string) {
	s.mu.Lock()
	open := map[string]bool{}
	for _, dir := range s.streams {
		for d := dir; len(d) >= len(root); d = filepath.Dir(d) {
			open[d] = true
		}
	}
	s.mu.Unlock()
	var dirs []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	// Deepest first, so parents empty out before they are looked at.
	for i := len(dirs) - 1; i >= 0; i-- {
		if !open[dirs[i]] {
			os.Remove(dirs[i]) // fails, as it should, when not empty
		}
	}
}

// Close stops the retention pass and ends every follower. Open streams
// stay usable until closed by their owners.
func (s *Store) Close() error {
	s.CloseFollowers()
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
