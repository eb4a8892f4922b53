// Package testimage makes the small busybox image the OCI engine tests
// import (containerd on the host and in the VM guest, podman in the
// guest): a root file system as a tar stream, and a docker-archive
// tarball of it. Tests only; it writes nothing but the file it is asked for.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Rootfs is a root file system as a tar stream: the static busybox at bb
// with its applets linked, the usual top-level directories, /etc/passwd and
// /etc/group.
func Rootfs(bb string) ([]byte, error) {
	data, err := os.ReadFile(bb)
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	applets, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bb, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var werr error
	add := func(h *tar.Header, body string) {
		if werr != nil {
			return
		}
		h.ModTime = time.Unix(0, 0)
		h.Size = int64(len(body))
		if werr = tw.WriteHeader(h); werr == nil {
			_, werr = io.WriteString(tw, body)
		}
	}
	for _, d := range []string{"bin/", "etc/", "dev/", "proc/", "sys/", "tmp/", "root/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode}, "")
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, string(data))
	for _, a := range strings.Fields(string(applets)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, "")
		}
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644},
		"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, "root:x:0:\nnogroup:x:65534:\n")
	if werr == nil {
		werr = tw.Close()
	}
	if werr != nil {
		return nil, fmt.Errorf("busybox root file system: %w", werr)
	}
	return buf.Bytes(), nil
}

// Archive writes a docker-archive tarball (what `ctr image import` and
// `docker load` take) of a one-layer image named ref, its layer Rootfs(bb),
// its command /bin/sh and PATH=/bin, to path.
func Archive(path, ref, bb string) error {
	raw, err := Rootfs(bb)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		return fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: runtime.GOARCH,
		Config: v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err == nil {
		img, err = mutate.AppendLayers(img, layer)
	}
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
