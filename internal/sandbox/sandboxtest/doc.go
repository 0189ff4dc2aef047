// Package sandboxtest owns the conformance suite that every
// sandbox.Runtime implementation runs against itself, the probe program the
// suite runs inside environments, and helpers to build a root filesystem
// holding it.
//
// An implementation's test calls
//
//	rootfs := sandboxtest.BuildRootFS(t)
//	sandboxtest.Run(t, sandboxtest.Config{
//		NewRuntime: func(t *testing.T) sandbox.Runtime { ... },
//		RootFS:     rootfs,
//		Isolated:   true,
//	})
package sandboxtest
