//go:build embedinit && embedstage

package main

import (
	_ "embed"

	"sandbox/parent"
)

// The holder stage (cmd/sandbox-stage, a static C program), built by
// scripts/build.sh just before this binary when a C compiler is there;
// it runs from a sealed memfd, as init does.
//
//go:embed sandbox-stage.bin
var stageELF string

func init() { parent.StageELF = stageELF }
