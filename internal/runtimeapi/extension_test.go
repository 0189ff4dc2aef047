package runtimeapi

import (
	"net/http"
	"testing"
)

func TestExtensionStub(t *testing.T) {
	tests := []struct {
		name, method, path string
	}{
		{name: "register", method: http.MethodPost, path: "/2020-01-01/extension/register"},
		{name: "event next", method: http.MethodGet, path: "/2020-01-01/extension/event/next"},
		{name: "init error", method: http.MethodPost, path: "/2020-01-01/extension/init/error"},
		{name: "exit error", method: http.MethodPost, path: "/2020-01-01/extension/exit/error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := newTestServer(t, Options{})
			r := do(t, ts, tt.method, tt.path, []byte(`{"events":["INVOKE"]}`), "Lambda-Extension-Name", "x")
			wantAPIError(t, r, http.StatusNotImplemented, errExtensionNotSupported)
		})
	}
	t.Run("bare prefix is not an endpoint", func(t *testing.T) {
		_, ts := newTestServer(t, Options{})
		wantAPIError(t, do(t, ts, http.MethodPost, "/2020-01-01/extension", nil), http.StatusNotFound, errNotFound)
	})
}
