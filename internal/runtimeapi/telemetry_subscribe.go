package runtimeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Telemetry API schema versions.
var telemetrySchemas = map[string]bool{"2022-07-01": true, "2022-12-13": true, "2025-01-29": true}

// Buffering limits and defaults of a subscription.
const (
	minMaxItems = 1000
	maxMaxItems = 10000
	minMaxBytes = 262144
	maxMaxBytes = 1048576
	minTimeout  = 25
	maxTimeout  = 30000

	defaultMaxItems       = 1000
	defaultLegacyMaxItems = 10000
	defaultMaxBytes       = 262144
	defaultTimeoutMs      = 1000
)

// maxSubscribeBody caps a subscription body.
const maxSubscribeBody = 64 << 10

// subscriptionConfig is a validated subscription.
type subscriptionConfig struct {
	legacy                        bool // Logs API (PUT /2020-08-15/logs)
	schema                        string
	types                         []string
	platform, function, extension bool
	tcp                           bool
	uri                           string // HTTP destinations
	port                          int
	maxItems, maxBytes            int
	timeout                       time.Duration
}

func (c subscriptionConfig) wants(cat category) bool {
	switch cat {
	case catPlatform:
		return c.platform
	case catFunction:
		return c.function
	case catExtension:
		return c.extension
	}
	return false
}

type subscribeBody struct {
	SchemaVersion *string `json:"schemaVersion"`
	Destination   *struct {
		Protocol *string `json:"protocol"`
		URI      *string `json:"URI"`
		Port     *int64  `json:"port"`
	} `json:"destination"`
	Types     []string `json:"types"`
	Buffering *struct {
		MaxItems  *int64 `json:"maxItems"`
		MaxBytes  *int64 `json:"maxBytes"`
		TimeoutMs *int64 `json:"timeoutMs"`
	} `json:"buffering"`
}

// parseSubscription validates a Telemetry API (legacy false) or Logs API
// (legacy true) subscription body. The error lists every problem, joined
// by "; ", as Lambda's ValidationError does.
func parseSubscription(body []byte, legacy bool) (subscriptionConfig, error) {
	var in subscribeBody
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil || len(bytes.Trim(body[dec.InputOffset():], " \t\r\n")) != 0 {
		return subscriptionConfig{}, fmt.Errorf("request body is not a valid JSON subscription")
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return subscriptionConfig{}, fmt.Errorf("request body is not a JSON object")
	}
	cfg := subscriptionConfig{legacy: legacy, maxItems: defaultMaxItems, maxBytes: defaultMaxBytes,
		timeout: defaultTimeoutMs * time.Millisecond}
	if legacy {
		cfg.maxItems = defaultLegacyMaxItems
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	switch {
	case in.SchemaVersion == nil && !legacy:
		bad("schemaVersion is required")
	case in.SchemaVersion != nil && !legacy && !telemetrySchemas[*in.SchemaVersion]:
		bad("schemaVersion %.32q is not supported: use 2025-01-29, 2022-12-13 or 2022-07-01", *in.SchemaVersion)
	case in.SchemaVersion != nil:
		cfg.schema = *in.SchemaVersion
	}

	d := in.Destination
	switch {
	case d == nil:
		bad("destination is required")
	case d.Protocol == nil:
		bad("destination protocol is required")
	case *d.Protocol == "HTTP":
		cfg.port = -1
		if d.URI == nil || *d.URI == "" {
			bad("URI is not provided")
			break
		}
		u, err := url.Parse(*d.URI)
		if err != nil {
			bad("URI is not a valid URI")
			break
		}
		if u.Scheme != "http" {
			bad("URI scheme must be http")
		}
		if !sandboxHosts[u.Hostname()] {
			bad("URI host must be sandbox.localdomain")
		}
		if p := u.Port(); p == "" {
			bad("URI port is not provided")
		} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			bad("URI port is not valid")
		} else {
			cfg.port = n
		}
		if u.User != nil {
			bad("URI must not hold user information")
		}
		cfg.uri = u.String()
	case *d.Protocol == "TCP":
		cfg.tcp = true
		if d.Port == nil {
			bad("port is not provided")
		} else if *d.Port < 1 || *d.Port > 65535 {
			bad("port is not valid")
		} else {
			cfg.port = int(*d.Port)
		}
	default:
		bad("destination protocol %.32q is not supported: use HTTP or TCP", *d.Protocol)
	}

	if len(in.Types) == 0 {
		bad("types should not be empty")
	}
	for _, t := range in.Types {
		switch t {
		case "platform":
			cfg.platform = true
		case "function":
			cfg.function = true
		case "extension":
			cfg.extension = true
		default:
			bad("type %.32q is not supported: use platform, function or extension", t)
			continue
		}
		cfg.types = append(cfg.types, t)
	}

	if b := in.Buffering; b != nil {
		if b.MaxItems != nil {
			if *b.MaxItems < minMaxItems || *b.MaxItems > maxMaxItems {
				bad("buffering.maxItems must be between %d and %d", minMaxItems, maxMaxItems)
			} else {
				cfg.maxItems = int(*b.MaxItems)
			}
		}
		if b.MaxBytes != nil {
			if *b.MaxBytes < minMaxBytes || *b.MaxBytes > maxMaxBytes {
				bad("buffering.maxBytes must be between %d and %d", minMaxBytes, maxMaxBytes)
			} else {
				cfg.maxBytes = int(*b.MaxBytes)
			}
		}
		if b.TimeoutMs != nil {
			if *b.TimeoutMs < minTimeout || *b.TimeoutMs > maxTimeout {
				bad("buffering.timeoutMs must be between %d and %d", minTimeout, maxTimeout)
			} else {
				cfg.timeout = time.Duration(*b.TimeoutMs) * time.Millisecond
			}
		}
	}
	if len(problems) > 0 {
		return subscriptionConfig{}, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return cfg, nil
}

var okBody = []byte(`"OK"`)

// handleTelemetrySubscribe serves PUT /2022-07-01/telemetry.
func (s *Server) handleTelemetrySubscribe(w http.ResponseWriter, r *http.Request, _ string) {
	s.subscribe(w, r, false)
}

// handleLogsSubscribe serves PUT /2020-08-15/logs, the legacy Logs API. It
// answers as the Telemetry API does and delivers the same stream in the
// Logs API's shapes (platform.start, platform.runtimeDone, platform.end,
// platform.report, platform.extension, platform.logsSubscription,
// platform.logsDropped and the log lines; no init events).
func (s *Server) handleLogsSubscribe(w http.ResponseWriter, r *http.Request, _ string) {
	s.subscribe(w, r, true)
}

// subscribe validates and starts a subscription: 200 "OK"; 400
// ValidationError listing what is wrong with the body; 403 for a missing
// or unknown Lambda-Extension-Identifier and, once init ended,
// Telemetry.SubscriptionClosed (Logs.SubscriptionClosed).
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, legacy bool) {
	x, aerr := s.extensionFor(r)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.mu.Lock()
	closed := s.initResolved
	s.mu.Unlock()
	if closed {
		if legacy {
			writeAPIError(w, &apiError{http.StatusForbidden, errLogsSubscriptionClosed, "Logs API subscription is closed already"})
		} else {
			writeAPIError(w, &apiError{http.StatusForbidden, errTelemetrySubscriptionClosed, "Telemetry API subscription is closed already"})
		}
		return
	}
	body, err := s.readRequestBody(w, r, maxSubscribeBody)
	if err != nil {
		writeAPIError(w, &apiError{http.StatusBadRequest, errValidation, "request body is too large or truncated"})
		return
	}
	cfg, err := parseSubscription(body, legacy)
	if err != nil {
		writeAPIError(w, &apiError{http.StatusBadRequest, errValidation, err.Error()})
		return
	}
	if !s.telemetry.subscribe(x.name, cfg) {
		writeAPIError(w, apiErrClosed)
		return
	}
	s.log.Info("telemetry api: subscribed", "extension", x.name, "legacy", legacy, "types", cfg.types, "tcp", cfg.tcp, "port", cfg.port)
	rec := PlatformTelemetrySubscription{Name: x.name, State: "Subscribed", Types: cfg.types}
	if legacy {
		s.telemetry.Platform(platformLogsSubscription(rec))
	} else {
		s.telemetry.Platform(rec)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(okBody)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}
