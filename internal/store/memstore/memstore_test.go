package memstore

import (
	"testing"

	"github.com/kappa-run/kappa/internal/store/storetest"
)

func TestConformance(t *testing.T) { storetest.Run(t, New()) }
