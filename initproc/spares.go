package initproc

import (
	"runtime"
	"sync"
)

// spareThreads is how many OS threads init makes and leaves idle before
// the payload starts. Init runs as the payload's user inside, and so
// shares its RLIMIT_NPROC: once the payload's processes fill it, a new
// thread for init's Go runtime (a signal, a `sandbox exec`, a blocking
// call) failed, and init died of it (fatal error: newosproc), taking the
// sandbox with it. Go's runtime runs on an idle thread before it makes a
// new one, and keeps idle ones.
const spareThreads = 4

// makeSpareThreads starts spareThreads threads and lets them go idle; the
// channel closes once they are.
func makeSpareThreads() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var locked, release sync.WaitGroup
		locked.Add(spareThreads)
		release.Add(1)
		var exited sync.WaitGroup
		exited.Add(spareThreads)
		for range spareThreads {
			// Each holds a thread of its own until released: the next
			// one then needs another. Unlocked before it returns, its
			// thread goes idle instead of exiting.
			go func() {
				defer exited.Done()
				runtime.LockOSThread()
				locked.Done()
				release.Wait()
				runtime.UnlockOSThread()
			}()
		}
		locked.Wait()
		release.Done()
		exited.Wait()
	}()
	return done
}
