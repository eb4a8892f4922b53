package seccomp

import (
	"bytes"
	"fmt"

	"sandbox/internal/userfile"
)

// Spec values Load understands besides a file path.
const (
	SpecDefault    = "default"
	SpecUnconfined = "unconfined"
)

// Load compiles the profile a --seccomp option names: "default" (or "")
// for Default(def), "unconfined" for none (a nil program, which Install
// accepts and ignores), anything else is the path of a JSON profile.
// Errors about a file name it.
func Load(spec string, opts Options, def DefaultOptions) (*Program, error) {
	switch spec {
	case SpecUnconfined:
		return nil, nil
	case SpecDefault, "":
		prog, err := Compile(Default(def), opts)
		if err != nil {
			return nil, fmt.Errorf("default seccomp profile: %w", err)
		}
		return prog, nil
	}
	data, err := userfile.Read(spec, userfile.MaxConfig)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", spec, err)
	}
	p, err := Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	prog, err := Compile(p, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	return prog, nil
}
