package funcurl

import (
	"encoding/base64"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is the HTTP API payload v2.0 event of a function URL request.
type Event struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        RequestContext    `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

// RequestContext is the event's requestContext.
type RequestContext struct {
	AccountID    string      `json:"accountId"`
	APIID        string      `json:"apiId"`
	Authorizer   *Authorizer `json:"authorizer,omitempty"`
	DomainName   string      `json:"domainName"`
	DomainPrefix string      `json:"domainPrefix"`
	HTTP         HTTPContext `json:"http"`
	RequestID    string      `json:"requestId"`
	RouteKey     string      `json:"routeKey"`
	Stage        string      `json:"stage"`
	Time         string      `json:"time"`
	TimeEpoch    int64       `json:"timeEpoch"`
}

// HTTPContext is requestContext.http.
type HTTPContext struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// Authorizer carries the caller of an AWS_IAM URL.
type Authorizer struct {
	IAM IAMIdentity `json:"iam"`
}

// IAMIdentity is requestContext.authorizer.iam.
type IAMIdentity struct {
	AccessKey       string  `json:"accessKey"`
	AccountID       string  `json:"accountId"`
	CallerID        string  `json:"callerId"`
	CognitoIdentity *string `json:"cognitoIdentity"`
	PrincipalOrgID  *string `json:"principalOrgId"`
	UserARN         string  `json:"userArn"`
	UserID          string  `json:"userId"`
}

// Request is what an event is built from: an HTTP request stripped of the
// transport, so that BuildEvent is a pure function.
type Request struct {
	Method     string
	RawPath    string // escaped, as sent, without a /lambda-url/<id> prefix
	RawQuery   string
	Proto      string
	Host       string
	Header     http.Header
	RemoteAddr string
	// Port is the server port the request came in on (x-forwarded-port).
	Port      string
	Body      []byte
	Time      time.Time
	RequestID string
	TraceID   string
	URLID     string
	// DomainName is the URL's host name (without port).
	DomainName string
	// AccountID is "anonymous" for AuthType NONE, as Lambda sends.
	AccountID string
	Caller    *IAMIdentity
}

// requestTime is the layout of requestContext.time.
const requestTime = "02/Jan/2006:15:04:05 -0700"

// BuildEvent builds the payload v2.0 event Lambda sends for in.
func BuildEvent(in Request) Event {
	ev := Event{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        in.RawPath,
		RawQueryString: in.RawQuery,
		Headers:        map[string]string{},
	}
	if ev.RawPath == "" {
		ev.RawPath = "/"
	}
	for name, values := range in.Header {
		n := strings.ToLower(name)
		if n == "cookie" {
			for _, v := range values {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						ev.Cookies = append(ev.Cookies, c)
					}
				}
			}
			continue
		}
		if prev, ok := ev.Headers[n]; ok {
			values = append([]string{prev}, values...)
		}
		ev.Headers[n] = strings.Join(values, ",")
	}
	sourceIP := in.RemoteAddr
	if host, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		sourceIP = host
	}
	if in.Host != "" {
		ev.Headers["host"] = in.Host
	}
	if xff := ev.Headers["x-forwarded-for"]; xff != "" {
		ev.Headers["x-forwarded-for"] = xff + ", " + sourceIP
	} else {
		ev.Headers["x-forwarded-for"] = sourceIP
	}
	ev.Headers["x-forwarded-proto"] = "http"
	if in.Port != "" {
		ev.Headers["x-forwarded-port"] = in.Port
	}
	if in.TraceID != "" {
		ev.Headers["x-amzn-trace-id"] = in.TraceID
	}
	ev.QueryStringParameters = queryParameters(in.RawQuery)
	if len(in.Body) > 0 {
		if isText(in.Header.Get("Content-Type")) && utf8.Valid(in.Body) {
			ev.Body = string(in.Body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(in.Body)
			ev.IsBase64Encoded = true
		}
	}
	path := in.RawPath
	if p, err := url.PathUnescape(in.RawPath); err == nil {
		path = p
	}
	if path == "" {
		path = "/"
	}
	proto := in.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	ev.RequestContext = RequestContext{
		AccountID:    in.AccountID,
		APIID:        in.URLID,
		DomainName:   in.DomainName,
		DomainPrefix: in.URLID,
		HTTP: HTTPContext{
			Method: in.Method, Path: path, Protocol: proto,
			SourceIP: sourceIP, UserAgent: in.Header.Get("User-Agent"),
		},
		RequestID: in.RequestID,
		RouteKey:  "$default",
		Stage:     "$default",
		Time:      in.Time.UTC().Format(requestTime),
		TimeEpoch: in.Time.UnixMilli(),
	}
	if in.Caller != nil {
		ev.RequestContext.Authorizer = &Authorizer{IAM: *in.Caller}
	}
	return ev
}

// MarshalEvent encodes an event.
func MarshalEvent(ev Event) []byte {
	b, _ := json.Marshal(ev)
	return b
}

// queryParameters decodes a raw query; repeated keys are comma-joined in
// order. Pairs that do not decode are passed through as sent.
func queryParameters(raw string) map[string]string {
	if raw == "" {
		return nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		if prev, ok := out[k]; ok {
			v = prev + "," + v
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// isText reports whether a body of this content type is passed as text;
// others are base64-encoded (isBase64Encoded), as Lambda does.
func isText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	typ, sub, _ := strings.Cut(mt, "/")
	switch {
	case typ == "text":
		return true
	case sub == "json" || strings.HasSuffix(sub, "+json"),
		sub == "xml" || strings.HasSuffix(sub, "+xml"),
		mt == "application/javascript", mt == "application/yaml":
		return true
	}
	return false
}
