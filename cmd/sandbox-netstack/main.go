// Command sandbox-netstack is the helper behind `sandbox run --net=builtin`:
// the in-process user-mode network stack, kept out of `sandbox` itself so
// that its start-up cost is paid only when it is used. It is started by
// sandbox, never by hand.
package main

import (
	"os"

	"sandbox/netns/netstack"
)

func main() {
	os.Exit(netstack.Main())
}
