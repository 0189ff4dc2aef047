package funcurl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/runtimeapi"
)

// MaxRequestBody is the largest request body a URL accepts (Lambda's 6 MB
// synchronous payload limit).
const MaxRequestBody = 6 * 1024 * 1024

// PathPrefix addresses a URL by path: /lambda-url/<url-id>/….
const PathPrefix = "/lambda-url/"

// Resolver picks the configuration an invocation runs; *function.Service
// implements it.
type Resolver interface {
	Resolve(ctx context.Context, ref function.Ref) (function.Target, error)
	ARN(name, qualifier string) string
	UnreservedCached() int
}

// Invoker runs invocations; *invoker.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, req invoker.Request) (*invoker.Response, error)
}

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	Configs   *Configs
	Functions Resolver
	Invoker   Invoker
	Region    string
	Account   string
	// Credentials are the access keys (id → secret) AWS_IAM URLs accept.
	Credentials map[string]string
	Logger      *slog.Logger
	Now         func() time.Time
}

// Handler serves function URLs. Safe for concurrent use.
type Handler struct {
	opts     HandlerOptions
	log      *slog.Logger
	verifier *Verifier
}

// NewHandler returns the HTTP front of function URLs.
func NewHandler(opts HandlerOptions) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, log: opts.Logger}
	h.verifier = &Verifier{Region: opts.Region, Service: "lambda", Now: opts.Now,
		Secret: func(id string) (string, bool) { s, ok := opts.Credentials[id]; return s, ok && id != "" }}
	return h
}

// Match reports whether r is addressed to a function URL, and returns its
// url-id and the request path without any /lambda-url/<id> prefix.
func Match(r *http.Request) (id, rawPath string, ok bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if label, rest, found := strings.Cut(host, "."); found && strings.HasPrefix(rest, "lambda-url.") && label != "" {
		return strings.ToLower(label), r.URL.EscapedPath(), true
	}
	if rest, found := strings.CutPrefix(r.URL.EscapedPath(), PathPrefix); found {
		id, path, _ := strings.Cut(rest, "/")
		if id == "" {
			return "", "", false
		}
		return id, "/" + path, true
	}
	return "", "", false
}

// problem writes an error the way function URLs answer them.
func problem(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"Message": msg})
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rawPath, ok := Match(r)
	requestID := uuid.NewString()
	w.Header().Set("X-Amzn-Requestid", requestID)
	if !ok {
		problem(w, http.StatusNotFound, "Not Found")
		return
	}
	ctx := r.Context()
	cfg, err := h.opts.Configs.Lookup(ctx, id)
	if err != nil {
		if errors.Is(err, apierr.NotFound) {
			problem(w, http.StatusNotFound, "Not Found")
			return
		}
		h.log.Error("function url lookup", "id", id, "err", err)
		problem(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	if cfg.Cors != nil && IsPreflight(r) {
		for k, v := range cfg.Cors.Preflight(r) {
			w.Header()[k] = v
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.ContentLength > MaxRequestBody {
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", MaxRequestBody))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
	if err != nil {
		problem(w, http.StatusBadRequest, "Could not read the request body")
		return
	}
	if len(body) > MaxRequestBody {
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", MaxRequestBody))
		return
	}
	in := Request{
		Method: r.Method, RawPath: rawPath, RawQuery: r.URL.RawQuery, Proto: r.Proto, Host: r.Host,
		Header: r.Header.Clone(), RemoteAddr: r.RemoteAddr, Body: body, Time: h.opts.Now(),
		RequestID: requestID, URLID: id, AccountID: "anonymous",
		TraceID: r.Header.Get("X-Amzn-Trace-Id"),
	}
	if in.TraceID == "" {
		in.TraceID = runtimeapi.NewTraceID(in.Time)
	}
	in.DomainName = r.Host
	if host, port, err := net.SplitHostPort(r.Host); err == nil {
		in.DomainName, in.Port = host, port
	}
	if !strings.Contains(in.DomainName, ".lambda-url.") {
		in.DomainName = id + ".lambda-url." + h.opts.Region + ".localhost"
	}
	if cfg.AuthType == AuthIAM {
		key, err := h.verifier.Verify(r, body)
		if err != nil {
			h.log.Info("function url request refused", "id", id, "err", err)
			problem(w, http.StatusForbidden, "Forbidden")
			return
		}
		in.AccountID = h.opts.Account
		in.Caller = &IAMIdentity{AccessKey: key, AccountID: h.opts.Account, CallerID: key, UserID: key,
			UserARN: fmt.Sprintf("arn:aws:iam::%s:user/%s", h.opts.Account, key)}
	}
	in.Header.Del("Authorization") // the caller's credentials are not the function's business
	if cfg.InvokeMode == ModeStream {
		h.serveStream(w, r, cfg, in)
		return
	}
	resp := h.invoke(ctx, cfg, in)
	if cfg.Cors != nil {
		cfg.Cors.Apply(resp.Header, r.Header.Get("Origin"))
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.Header().Set("X-Amzn-Trace-Id", in.TraceID)
	w.WriteHeader(resp.Status)
	if r.Method != http.MethodHead {
		w.Write(resp.Body)
	}
}

// invoke runs the function with the request's event and maps the result
// (BUFFERED URLs; RESPONSE_STREAM ones are served by serveStream).
func (h *Handler) invoke(ctx context.Context, cfg *Config, in Request) Response {
	plain := func(status int, msg string) Response {
		hdr := http.Header{}
		hdr.Set("Content-Type", "application/json")
		b, _ := json.Marshal(map[string]string{"Message": msg})
		return Response{Status: status, Header: hdr, Body: b}
	}
	q := cfg.Qualifier
	if q == function.LatestVersion {
		q = ""
	}
	ref := function.Ref{Name: cfg.FunctionName, Qualifier: q}
	target, err := h.opts.Functions.Resolve(ctx, ref)
	if err != nil {
		return h.platform(err, plain)
	}
	res, err := h.opts.Invoker.Invoke(context.WithoutCancel(ctx), invoker.Request{
		Config:     target.Config,
		Reserved:   target.Reserved,
		Unreserved: h.opts.Functions.UnreservedCached(),
		RequestID:  in.RequestID,
		Payload:    MarshalEvent(BuildEvent(in)),
		InvokedARN: h.opts.Functions.ARN(ref.Name, ref.Qualifier),
		TraceID:    in.TraceID,
	})
	if err != nil {
		return h.platform(err, plain)
	}
	if res.FunctionError != "" {
		hdr := http.Header{}
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		return Response{Status: http.StatusBadGateway, Header: hdr, Body: []byte("Internal Server Error")}
	}
	out, err := MapResponse(res.Payload)
	if err != nil {
		h.log.Info("function url: malformed function response", "function", cfg.FunctionName, "requestId", in.RequestID, "err", err)
		hdr := http.Header{}
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		return Response{Status: http.StatusBadGateway, Header: hdr, Body: []byte("Internal Server Error")}
	}
	return out
}

// platform maps an error from resolving or invoking to a response.
func (h *Handler) platform(err error, plain func(int, string) Response) Response {
	e := apierr.As(err)
	switch {
	case e == nil:
		h.log.Error("function url invocation", "err", err)
		return plain(http.StatusInternalServerError, "Internal Server Error")
	case e.Kind == apierr.TooManyRequests:
		return plain(http.StatusTooManyRequests, e.Message)
	case e.Kind == apierr.NotFound:
		return plain(http.StatusNotFound, "Not Found")
	case e.Kind == apierr.Internal:
		h.log.Error("function url invocation", "err", err)
		return plain(http.StatusInternalServerError, "Internal Server Error")
	default:
		return plain(http.StatusBadGateway, e.Message)
	}
}
