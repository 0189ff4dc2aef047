package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/spf13/cobra"

	"github.com/kappa-run/kappa/internal/imagebuild"
)

type pushOptions struct {
	base       string
	entrypoint []string
	cmd        []string
	env        []string
	workdir    string
	arch       string
}

func newPushCmd() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push SOURCE IMAGE",
		Short: "Push a directory, a docker/podman save tarball or an OCI layout as an image",
		Long: `Push SOURCE to the registry reference IMAGE (e.g. localhost:9070/hello:v1).

SOURCE is one of:
  a directory          packed as one layer onto scratch (or --base), with
                       --entrypoint/--cmd/--env/--workdir as the image config
  a .tar file          the output of 'docker save' or 'podman save'
  an OCI layout dir    a directory holding an oci-layout file`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError{fmt.Errorf("push needs SOURCE and IMAGE, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := o.load(args[0])
			if err != nil {
				return err
			}
			ref, err := name.ParseReference(args[1])
			if err != nil {
				return usageError{fmt.Errorf("image reference %q: %w", args[1], err)}
			}
			if err := remote.Write(ref, img, remote.WithContext(cmd.Context()), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
				return fmt.Errorf("push %s: %w", ref, err)
			}
			d, _ := img.Digest()
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", ref.Context(), d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.base, "base", "", "base image to put the directory layer on (default: scratch)")
	f.StringArrayVar(&o.entrypoint, "entrypoint", nil, "ENTRYPOINT, one flag per argument")
	f.StringArrayVar(&o.cmd, "cmd", nil, "CMD, one flag per argument")
	f.StringArrayVar(&o.env, "env", nil, "ENV entry KEY=VALUE (repeatable)")
	f.StringVar(&o.workdir, "workdir", "", "WORKDIR")
	f.StringVar(&o.arch, "arch", "amd64", "architecture of a scratch image (amd64 or arm64)")
	return cmd
}

// load reads SOURCE as an image.
func (o *pushOptions) load(src string) (v1.Image, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			return nil, fmt.Errorf("read %s as a docker save tarball: %w", src, err)
		}
		return o.configure(img)
	}
	if _, err := os.Stat(filepath.Join(src, "oci-layout")); err == nil {
		idx, err := layout.ImageIndexFromPath(src)
		if err != nil {
			return nil, fmt.Errorf("read OCI layout %s: %w", src, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		if len(im.Manifests) != 1 {
			return nil, fmt.Errorf("OCI layout %s holds %d manifests; push needs exactly one image", src, len(im.Manifests))
		}
		img, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: %w", src, err)
		}
		return o.configure(img)
	}
	base := empty.Image
	if o.base != "" {
		ref, err := name.ParseReference(o.base)
		if err != nil {
			return nil, usageError{fmt.Errorf("--base %q: %w", o.base, err)}
		}
		if base, err = remote.Image(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return nil, fmt.Errorf("pull base %s: %w", ref, err)
		}
	}
	layer, err := imagebuild.DirLayer(src)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	if o.base == "" {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", o.arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
	}
	return o.configure(img)
}

// configure applies the --entrypoint/--cmd/--env/--workdir overrides.
func (o *pushOptions) configure(img v1.Image) (v1.Image, error) {
	if o.entrypoint == nil && o.cmd == nil && o.env == nil && o.workdir == "" {
		return img, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	c := cf.Config
	if o.entrypoint != nil {
		c.Entrypoint = o.entrypoint
	}
	if o.cmd != nil {
		c.Cmd = o.cmd
	}
	for _, kv := range o.env {
		if !strings.Contains(kv, "=") {
			return nil, usageError{fmt.Errorf("--env %q: want KEY=VALUE", kv)}
		}
		c.Env = append(c.Env, kv)
	}
	if o.workdir != "" {
		c.WorkingDir = o.workdir
	}
	return mutate.Config(img, c)
}
