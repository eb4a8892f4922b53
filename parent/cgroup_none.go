package parent

import (
	"sandbox/state"
	"sandbox/userns"
)

// noCgroup is a run without a cgroup of its own: init starts where the
// caller is. Chosen only where no limit is asked for or every one was
// dropped (--limits=best-effort): a strict run with limits fails closed
// before it gets here.
type noCgroup struct{}

func (noCgroup) startInit(o userns.Options) (*userns.Child, error) { return userns.Start(o) }
func (noCgroup) adoptInit(*userns.Child) bool                      { return true }
func (noCgroup) where(*userns.Child) string                        { return "" }
func (noCgroup) placed(*userns.Child)                              {}
func (noCgroup) describe(*state.Info)                              {}
func (noCgroup) limits() []string                                  { return nil }
func (noCgroup) finish(status int, err error) (int, error)         { return status, err }
