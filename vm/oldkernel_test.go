//go:build linux

package vm

import (
	"os"
	"path/filepath"
	"testing"
)

// oldCache is the old-kernel guest's kernel: Debian 11's 5.10, the oldest
// kernel sandbox supports (scripts/setup-host.sh runs
// vm/fetch-old-kernel.sh).
const oldCache = "/var/cache/sandbox-vm-5.10"

// TestVMOldKernel boots Linux 5.10 (no overlayfs in user namespaces, no
// mount_setattr) and runs the guest's TestOld* tests as tester:
// TestVMOldKernel/old/TestOldDefaultRun, ...
func TestVMOldKernel(t *testing.T) {
	cache := os.Getenv("SANDBOX_VM_CACHE_OLD")
	if cache == "" {
		cache = oldCache
	}
	fuse, _ := filepath.Glob(filepath.Join(cache, "modules/lib/modules/*/kernel/fs/fuse/fuse.ko"))
	requireOrSkip(t, len(fuse) == 1, "the fuse module in "+cache+" (made by vm/fetch-old-kernel.sh)")
	bootGuest(t, cache, []pass{{"old", "tester", []string{"-test.run", "^TestOld"}}})
}
