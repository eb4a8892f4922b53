package spec

import (
	"sandbox/netns"
)

// ChildNet is init's part of the network setup, or nil.
func (s *Spec) ChildNet() *netns.Child {
	if s.Net == nil {
		return nil
	}
	return s.Net.ChildPart()
}
