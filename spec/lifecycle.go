package spec

// Detaching reports whether Run hands the sandbox to a background
// supervisor (which writes the report, when it ends).
func (s *Spec) Detaching() bool { return s.Detach && !s.Detached }
