package rie

import (
	"testing"
	"time"
)

// TestInitTimeoutDefault: init is bounded by the function timeout unless
// set, as in the AWS emulator, so a slow init does not fail every request.
func TestInitTimeoutDefault(t *testing.T) {
	c := Config{Bootstrap: []string{"/bootstrap"}, Timeout: 42 * time.Second}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.InitTimeout != 42*time.Second {
		t.Errorf("InitTimeout = %v, want the function timeout 42s", c.InitTimeout)
	}
	c = Config{Bootstrap: []string{"/bootstrap"}}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.InitTimeout != DefaultTimeout {
		t.Errorf("InitTimeout = %v, want %v", c.InitTimeout, DefaultTimeout)
	}
	c = Config{Bootstrap: []string{"/bootstrap"}, InitTimeout: time.Second}
	if err := c.setDefaults(); err != nil || c.InitTimeout != time.Second {
		t.Errorf("InitTimeout set = %v, %v; want 1s kept", c.InitTimeout, err)
	}
}
