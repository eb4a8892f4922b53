//go:build linux && vmguest

package guest

// In the VM's stock shape the sandbox already sits in a scope under
// user@1001.service that lacks io, and no user bus is reachable: another
// scope (`systemd-run --user --scope -p Delegate=yes`) would get the same
// controllers; only the drop-in delegates io, so the message must name it.

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
