package runtimeapi

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// NewHTTPServer returns the HTTP server that serves s on an environment's
// Runtime API listener: s.Handler(), a bound on how long a request's
// header may take, and a cap on the connections open at once
// (Options.MaxConns). A connection over the cap is closed as soon as it is
// accepted, before any request is read: the client's read ends (EOF, or a
// reset if its request had arrived) instead of hanging, and the first
// refusal is logged as a warning.
// Long polls (/next, /extension/event/next) hold their connection for as
// long as they wait, which is why no idle or read timeout applies.
func NewHTTPServer(s *Server) *http.Server {
	c := &connCap{max: s.maxConns, s: s}
	return &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ConnState: c.track}
}

// connCap counts the connections of one http.Server.
type connCap struct {
	max    int
	s      *Server
	mu     sync.Mutex
	open   int
	warned bool
	// refused are closed connections not yet reported closed: they no
	// longer count.
	refused map[net.Conn]struct{}
}

// track is the server's ConnState hook. Every connection reaches StateNew
// once and then, whatever happens, StateClosed or StateHijacked once.
func (c *connCap) track(conn net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		c.mu.Lock()
		over := c.open >= c.max
		if over {
			if c.refused == nil {
				c.refused = map[net.Conn]struct{}{}
			}
			c.refused[conn] = struct{}{}
		} else {
			c.open++
		}
		warn := over && !c.warned
		if warn {
			c.warned = true
		}
		c.mu.Unlock()
		if over {
			conn.Close() // the server's read fails at once; StateClosed follows
		}
		if warn {
			c.s.log.Warn("runtime api: too many connections; refusing new ones until some close",
				"max", c.max, "function", c.s.fn.Name)
		}
	case http.StateClosed, http.StateHijacked:
		c.mu.Lock()
		if _, ok := c.refused[conn]; ok {
			delete(c.refused, conn)
		} else {
			c.open--
		}
		c.mu.Unlock()
	}
}
