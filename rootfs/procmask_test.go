package rootfs

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestProcMasks(t *testing.T) {
	mi := `22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw
23 22 0:22 / /proc/sys/fs/binfmt_misc rw shared:6 - autofs systemd-1 rw
40 22 0:5 /null /proc/kcore ro,nosuid - devtmpfs udev rw
41 22 0:40 / /proc/a\040b ro - tmpfs tmpfs ro
42 1 0:41 / /procx rw - tmpfs tmpfs rw
`
	if got, want := ProcMasks(mi), []string{"/proc/kcore", "/proc/a b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("procMasks = %q, want %q", got, want)
	}
	e := &ProcMaskedError{Masked: []string{"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/sys"}, Err: unix.EPERM}
	if !errors.Is(e, unix.EPERM) || !strings.Contains(e.Error(), "4 of its entries (/proc/acpi, /proc/kcore, /proc/keys, …)") ||
		!strings.Contains(e.Error(), "unmask=ALL") {
		t.Errorf("error: %v", e)
	}
}
