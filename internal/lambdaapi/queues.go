package lambdaapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
)

// Queues are Kappa's durable queues (destinations write to them);
// *async.Queues implements it. The HTTP API under /kappa/queues is Kappa's
// own: list, create, describe, delete, send, and read by sequence number.
type Queues interface {
	List(ctx context.Context) ([]async.QueueInfo, error)
	Get(ctx context.Context, name string) (async.QueueInfo, error)
	Create(ctx context.Context, name string) (async.QueueInfo, error)
	Delete(ctx context.Context, name string) error
	Send(ctx context.Context, name string, body []byte) (uint64, error)
	Read(ctx context.Context, name string, after uint64, max int, wait time.Duration) ([]async.QueueMessage, error)
}

// Read limits of GET /kappa/queues/{queue}/messages.
const (
	maxQueueRead = 1000
	maxQueueWait = 20 * time.Second
)

type queueWire struct {
	Name          string `json:"Name"`
	Arn           string `json:"Arn"`
	Messages      uint64 `json:"Messages"`
	FirstSequence uint64 `json:"FirstSequence"`
	LastSequence  uint64 `json:"LastSequence"`
	Created       string `json:"Created"`
}

type queueMessageWire struct {
	Sequence uint64 `json:"Sequence"`
	Time     string `json:"Time"`
	// Body is the message, embedded as JSON when it is JSON and as a
	// string otherwise.
	Body json.RawMessage `json:"Body"`
}

func toQueueWire(q async.QueueInfo) queueWire {
	return queueWire{Name: q.Name, Arn: q.ARN, Messages: q.Messages, FirstSequence: q.FirstSeq, LastSequence: q.LastSeq,
		Created: q.Created.UTC().Format(time.RFC3339Nano)}
}

func (a *API) noQueues(w http.ResponseWriter) bool {
	if a.opts.Queues == nil {
		writeError(w, a.log, apierr.New(apierr.NotImplemented, "queues are not enabled on this server"))
		return true
	}
	return false
}

func (a *API) listQueues(w http.ResponseWriter, r *http.Request) {
	if a.noQueues(w) {
		return
	}
	qs, err := a.opts.Queues.List(r.Context())
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	out := struct {
		Queues []queueWire `json:"Queues"`
	}{Queues: []queueWire{}}
	for _, q := range qs {
		out.Queues = append(out.Queues, toQueueWire(q))
	}
	a.writeJSON(w, http.StatusOK, out)
}

func (a *API) createQueue(w http.ResponseWriter, r *http.Request) {
	if a.noQueues(w) {
		return
	}
	q, err := a.opts.Queues.Create(r.Context(), r.PathValue("queue"))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, toQueueWire(q))
}

func (a *API) getQueue(w http.ResponseWriter, r *http.Request) {
	if a.noQueues(w) {
		return
	}
	q, err := a.opts.Queues.Get(r.Context(), r.PathValue("queue"))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, toQueueWire(q))
}

func (a *API) deleteQueue(w http.ResponseWriter, r *http.Request) {
	if a.noQueues(w) {
		return
	}
	if err := a.opts.Queues.Delete(r.Context(), r.PathValue("queue")); err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) sendQueueMessage(w http.ResponseWriter, r *http.Request) {
	if a.noQueues(w) {
		return
	}
	body, err := readBody(r)
	if err == nil && len(body) > async.MaxPayload {
		err = apierr.New(apierr.RequestTooLarge, "Message must be smaller than %d bytes", async.MaxPayload)
	}
	var seq uint64
	if err == nil {
		seq, err = a.opts.Queues.Send(r.Context(), r.PathValue("queue"), body)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]uint64{"Sequence": seq})
}

// readQueueParams parses ?after&max&wait (wait in seconds, fractions allowed).
func readQueueParams(r *http.Request) (after uint64, max int, wait time.Duration, err error) {
	q := r.URL.Query()
	bad := func(name, v string) error {
		return apierr.New(apierr.Validation, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be a non-negative number", v, name)
	}
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, 0, bad("after", v)
		}
	}
	max = 100
	if v := q.Get("max"); v != "" {
		if max, err = strconv.Atoi(v); err != nil || max < 1 {
			return 0, 0, 0, bad("max", v)
		}
		max = min(max, maxQueueRead)
	}
	if v := q.Get("wait"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s < 0 || s != s {
			return 0, 0, 0, bad("wait", v)
		}
		// Clamped in seconds first: a huge (or infinite) value would
		// overflow a Duration into a negative one.
		wait = time.Duration(min(s, maxQueueWait.Seconds()) * float64(time.Second))
	}
	return after, max, wait, nil
}

func (a *API) readQueue(w http.ResponseWriter, r *http.Request) {
	if a.noQueues(w) {
		return
	}
	after, max, wait, err := readQueueParams(r)
	var msgs []async.QueueMessage
	if err == nil {
		msgs, err = a.opts.Queues.Read(r.Context(), r.PathValue("queue"), after, max, wait)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	out := struct {
		Messages     []queueMessageWire `json:"Messages"`
		LastSequence uint64             `json:"LastSequence"`
	}{Messages: []queueMessageWire{}, LastSequence: after}
	for _, m := range msgs {
		body := json.RawMessage(m.Body)
		if !json.Valid(m.Body) {
			body, _ = json.Marshal(string(m.Body))
		}
		out.Messages = append(out.Messages, queueMessageWire{Sequence: m.Seq, Time: m.Time.UTC().Format(time.RFC3339Nano), Body: body})
		out.LastSequence = m.Seq
	}
	a.writeJSON(w, http.StatusOK, out)
}
