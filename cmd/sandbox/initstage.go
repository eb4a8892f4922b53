//go:build embedinit && initstage

package main

import "sandbox/parent"

// scripts/build.sh adds the initstage tag only when the sandbox-init it
// embeds was built with cgo, and so has the holder stage.
func init() { parent.InitStage = true }
