//go:build !linux

package isolate

func fsProbeHook() {}
