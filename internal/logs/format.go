package logs

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Level is a log level as Lambda's LoggingConfig names them, TRACE (most
// detail) to FATAL.
type Level int8

// Levels, least severe first.
const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
	LevelFatal
)

var levelNames = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return "INFO"
	}
	return levelNames[l]
}

// ParseLevel reads a level name, case-insensitively, accepting the
// spellings runtimes use besides Lambda's own (WARNING, CRITICAL). ok is
// false for anything else.
func ParseLevel(s string) (l Level, ok bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE":
		return LevelTrace, true
	case "DEBUG":
		return LevelDebug, true
	case "INFO":
		return LevelInfo, true
	case "WARN", "WARNING":
		return LevelWarn, true
	case "ERROR":
		return LevelError, true
	case "FATAL", "CRITICAL":
		return LevelFatal, true
	}
	return LevelInfo, false
}

// Format is how an environment's lines are recorded: Lambda's
// LoggingConfig. The zero value is the Text format, which keeps every line
// as written.
type Format struct {
	// JSON renders the platform's lines (START, END, REPORT, logsDropped)
	// as Telemetry-API-shaped JSON objects and enables level filtering.
	JSON bool
	// Application is the least severe level of function lines kept (JSON
	// format only). A line that is a JSON object is filtered by its
	// "level" field; any other line, or a missing or unknown level,
	// counts as INFO, as Lambda does.
	Application Level
	// System is the least severe level of platform records kept (JSON
	// format only): platform.start, platform.runtimeDone and
	// platform.report are INFO, platform.logsDropped is WARN.
	System Level
}

// ParseFormat builds a Format from LoggingConfig's LogFormat,
// ApplicationLogLevel and SystemLogLevel; empty levels default to INFO.
func ParseFormat(logFormat, applicationLevel, systemLevel string) Format {
	f := Format{JSON: strings.EqualFold(logFormat, "JSON"), Application: LevelInfo, System: LevelInfo}
	if l, ok := ParseLevel(applicationLevel); ok {
		f.Application = l
	}
	if l, ok := ParseLevel(systemLevel); ok {
		f.System = l
	}
	return f
}

// keepFunctionLine reports whether a function's line passes the
// application level filter.
func (f Format) keepFunctionLine(line []byte) bool {
	if !f.JSON || f.Application <= LevelInfo && !mayBeJSON(line) {
		return true
	}
	return lineLevel(line) >= f.Application
}

func mayBeJSON(line []byte) bool {
	t := bytes.TrimLeft(line, " \t")
	return len(t) > 0 && t[0] == '{'
}

// lineLevel is the level of a function's line: the "level" field of a JSON
// object, else INFO.
func lineLevel(line []byte) Level {
	if !mayBeJSON(line) {
		return LevelInfo
	}
	var v struct {
		Level json.RawMessage `json:"level"`
	}
	if json.Unmarshal(line, &v) != nil || len(v.Level) == 0 {
		return LevelInfo
	}
	var s string
	if json.Unmarshal(v.Level, &s) != nil {
		return LevelInfo
	}
	l, _ := ParseLevel(s)
	return l
}

// platformLine is a line the platform wrote, parsed from Lambda's text
// forms.
type platformLine struct {
	kind      string // start, end, report, timeout or "" (other)
	requestID string
	version   string
	report    reportMetrics
}

type reportMetrics struct {
	DurationMs       float64  `json:"durationMs"`
	BilledDurationMs int64    `json:"billedDurationMs"`
	MemorySizeMB     int64    `json:"memorySizeMB"`
	MaxMemoryUsedMB  int64    `json:"maxMemoryUsedMB"`
	InitDurationMs   *float64 `json:"initDurationMs,omitempty"`
}

// parsePlatformLine recognises START, END, REPORT and the timeout line
// (LAMBDA_SURFACE §5).
func parsePlatformLine(line []byte) platformLine {
	s := string(line)
	switch {
	case strings.HasPrefix(s, "START RequestId: "):
		rest := strings.TrimPrefix(s, "START RequestId: ")
		id, ver, _ := strings.Cut(rest, " Version: ")
		return platformLine{kind: "start", requestID: strings.TrimSpace(id), version: strings.TrimSpace(ver)}
	case strings.HasPrefix(s, "END RequestId: "):
		return platformLine{kind: "end", requestID: strings.TrimSpace(strings.TrimPrefix(s, "END RequestId: "))}
	case strings.HasPrefix(s, "REPORT RequestId: "):
		p := platformLine{kind: "report"}
		for i, field := range strings.Split(strings.TrimPrefix(s, "REPORT "), "\t") {
			k, v, ok := strings.Cut(field, ": ")
			if !ok {
				continue
			}
			num := strings.Fields(v)
			if i == 0 && k == "RequestId" {
				p.requestID = strings.TrimSpace(v)
				continue
			}
			if len(num) == 0 {
				continue
			}
			f, _ := strconv.ParseFloat(num[0], 64)
			switch k {
			case "Duration":
				p.report.DurationMs = f
			case "Billed Duration":
				p.report.BilledDurationMs = int64(f)
			case "Memory Size":
				p.report.MemorySizeMB = int64(f)
			case "Max Memory Used":
				p.report.MaxMemoryUsedMB = int64(f)
			case "Init Duration":
				p.report.InitDurationMs = &f
			}
		}
		return p
	case strings.Contains(s, " Task timed out after "):
		f := strings.Fields(s)
		if len(f) >= 2 {
			return platformLine{kind: "timeout", requestID: f[1]}
		}
	}
	return platformLine{}
}

// telemetry is one Telemetry-API-shaped record as JSON-format logs carry
// it: {"time","type","record"}.
type telemetry struct {
	Time   string `json:"time"`
	Type   string `json:"type"`
	Record any    `json:"record"`
}

func telemetryTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// renderPlatformJSON renders a parsed platform line as a Telemetry record
// and returns its level; status is the invocation's outcome so far.
func renderPlatformJSON(t time.Time, p platformLine, raw []byte, status string) ([]byte, Level) {
	if status == "" {
		status = "success"
	}
	rec := telemetry{Time: telemetryTime(t)}
	level := LevelInfo
	switch p.kind {
	case "start":
		rec.Type = "platform.start"
		rec.Record = map[string]any{"requestId": p.requestID, "version": p.version}
	case "end":
		rec.Type = "platform.runtimeDone"
		r := map[string]any{"requestId": p.requestID, "status": status}
		if status == "timeout" {
			r["errorType"] = "Sandbox.Timedout"
		}
		rec.Record = r
	case "report":
		rec.Type = "platform.report"
		r := map[string]any{"requestId": p.requestID, "status": status, "metrics": p.report}
		if status == "timeout" {
			r["errorType"] = "Sandbox.Timedout"
		}
		rec.Record = r
	case "timeout":
		rec.Type = "platform.timeout"
		rec.Record = map[string]any{"requestId": p.requestID, "message": string(raw)}
		level = LevelWarn
	default:
		rec.Type = "platform.log"
		rec.Record = string(raw)
	}
	b, _ := json.Marshal(rec)
	return b, level
}

// DropReason says why lines were dropped.
type DropReason int

const (
	// DropRate: the environment wrote faster than its log rate limit.
	DropRate DropReason = iota + 1
	// DropBacklog: lines arrived faster than they could be written to disk.
	DropBacklog
)

func (r DropReason) String() string {
	switch r {
	case DropRate:
		return "Some logs were dropped because the function wrote them faster than the per-environment log rate limit."
	case DropBacklog:
		return "Some logs were dropped because the function wrote them faster than they could be stored."
	}
	return "Some logs were dropped."
}

// renderLogsDropped renders the logsDropped record: in JSON the Telemetry
// API's platform.logsDropped, in Text a line in the style of REPORT.
func renderLogsDropped(f Format, t time.Time, records, bytes int64, reason DropReason) []byte {
	if f.JSON {
		b, _ := json.Marshal(telemetry{Time: telemetryTime(t), Type: "platform.logsDropped", Record: map[string]any{
			"reason": reason.String(), "droppedRecords": records, "droppedBytes": bytes,
		}})
		return b
	}
	return []byte("LOGS DROPPED platform.logsDropped\tDropped Records: " + strconv.FormatInt(records, 10) +
		"\tDropped Bytes: " + strconv.FormatInt(bytes, 10) + "\tReason: " + reason.String() + "\t")
}
