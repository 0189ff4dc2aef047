package funcurl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Response is the HTTP response a function's result maps to.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// structured is the response document a function may return.
type structured struct {
	StatusCode      json.RawMessage            `json:"statusCode"`
	Headers         map[string]json.RawMessage `json:"headers"`
	Cookies         []string                   `json:"cookies"`
	Body            json.RawMessage            `json:"body"`
	IsBase64Encoded bool                       `json:"isBase64Encoded"`
}

// hopHeaders are set by the server, never by a function's response.
var hopHeaders = map[string]bool{
	"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true,
	"Upgrade": true, "Trailer": true, "Te": true, "Proxy-Connection": true,
}

// MapResponse turns a function's result into an HTTP response. A JSON
// object with a statusCode is a structured response (statusCode, headers,
// cookies → Set-Cookie, body, isBase64Encoded); anything else is the body
// of a 200 application/json response, as Lambda infers. An error means the
// structured response is malformed (Lambda answers 502).
func MapResponse(payload []byte) (Response, error) {
	resp := Response{Status: http.StatusOK, Header: http.Header{}}
	trimmed := bytes.TrimSpace(payload)
	var probe map[string]json.RawMessage
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &probe) != nil || probe["statusCode"] == nil {
		resp.Header.Set("Content-Type", "application/json")
		resp.Body = payload
		return resp, nil
	}
	return mapStructured(trimmed, "application/json")
}

// MapPrelude turns the JSON prelude of a streamed response
// (application/vnd.awslambda.http-integration-response) into the response
// head: statusCode (default 200), headers and cookies; the Content-Type
// defaults to application/octet-stream, as Lambda streams it.
func MapPrelude(prelude []byte) (Response, error) {
	trimmed := bytes.TrimSpace(prelude)
	if len(trimmed) == 0 {
		trimmed = []byte("{}")
	}
	head, err := mapStructured(trimmed, "application/octet-stream")
	head.Body = nil
	return head, err
}

// mapStructured maps a structured response; a statusCode is optional
// (200), a Content-Type header too (defaultType).
func mapStructured(trimmed []byte, defaultType string) (Response, error) {
	resp := Response{Status: http.StatusOK, Header: http.Header{}}
	var s structured
	if err := json.Unmarshal(trimmed, &s); err != nil {
		return Response{}, fmt.Errorf("malformed response: %w", err)
	}
	if s.StatusCode != nil {
		status, err := statusCode(s.StatusCode)
		if err != nil {
			return Response{}, err
		}
		resp.Status = status
	}
	for k, raw := range s.Headers {
		v, err := headerValue(raw)
		if err != nil {
			return Response{}, fmt.Errorf("header %s: %w", k, err)
		}
		k = http.CanonicalHeaderKey(k)
		if hopHeaders[k] || strings.ContainsAny(k, "\r\n:") || strings.ContainsAny(v, "\r\n") {
			continue
		}
		resp.Header.Set(k, v)
	}
	for _, c := range s.Cookies {
		if !strings.ContainsAny(c, "\r\n") {
			resp.Header.Add("Set-Cookie", c)
		}
	}
	if resp.Header.Get("Content-Type") == "" {
		resp.Header.Set("Content-Type", defaultType)
	}
	body, err := bodyOf(s.Body)
	if err != nil {
		return Response{}, err
	}
	if s.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(string(body)); err != nil {
			return Response{}, fmt.Errorf("body is not base64: %w", err)
		}
	}
	resp.Body = body
	return resp, nil
}

func statusCode(raw json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, fmt.Errorf("statusCode %s is not a number", raw)
		}
		n = json.Number(s)
	}
	code, err := strconv.Atoi(n.String())
	if err != nil || code < 100 || code > 599 {
		return 0, fmt.Errorf("statusCode %s is not an HTTP status", raw)
	}
	return code, nil
}

// headerValue accepts strings, numbers and booleans.
func headerValue(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch v.(type) {
	case float64, bool:
		return string(raw), nil
	}
	return "", fmt.Errorf("value %s is not a string", raw)
}

// bodyOf returns a string body as is; other JSON values are sent encoded.
func bodyOf(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s), nil
	}
	return raw, nil
}
