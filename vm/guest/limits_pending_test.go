//go:build linux && vmguest && cgrouppending

package guest

// Pending: builds only with the tag cgrouppending (SANDBOX_VM_TAGS=cgrouppending)
// until branch cgroup passes it; then delete "&& cgrouppending" above.
//
// In the VM's stock shape the sandbox already sits in a scope under
// user@1001.service that lacks io, and no user bus is reachable; the
// message then advises `systemd-run --user --scope -p Delegate=yes`, which
// gives a scope with the same controllers. Only the drop-in delegates io.

import (
	"strings"
	"testing"
)

// TestStockIOMaxNamesDropIn: the fail-closed --io-max error names the
// systemd drop-in that delegates io to user@.service.
func TestStockIOMaxNamesDropIn(t *testing.T) {
	r := run(t, append(append([]string{"run"}, stockIOMax...), "--", "true")...)
	wantCode(t, r, 125)
	if !strings.Contains(r.stderr, "user@.service.d") {
		t.Errorf("the error does not name the drop-in /etc/systemd/system/user@.service.d/…:\n%s", r)
	}
}
