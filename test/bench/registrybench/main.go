// Command registrybench measures Kappa's registry and image store next to
// CNCF Distribution and crane: push and pull throughput of random-content
// images, Create-to-Active time against `crane pull` + `crane export` +
// untar, and the disk use of ten functions built on one base image.
// scripts/bench-registry.sh starts the servers and runs it.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	kappa := flag.String("kappa", "", "host:port of the Kappa server")
	dist := flag.String("distribution", "", "host:port of CNCF Distribution")
	data := flag.String("data-dir", "", "Kappa's data directory (for disk use)")
	sizes := flag.String("sizes", "200,1024", "image sizes in MB")
	work := flag.String("work", os.TempDir(), "scratch directory for the crane baseline")
	base := flag.Int("base-mb", 200, "size of the shared base image of the ten-function test, in MB")
	flag.Parse()
	if *kappa == "" || *dist == "" || *data == "" {
		fmt.Fprintln(os.Stderr, "usage: registrybench -kappa HOST:PORT -distribution HOST:PORT -data-dir DIR")
		os.Exit(2)
	}
	if err := run(*kappa, *dist, *data, *sizes, *work, *base); err != nil {
		fmt.Fprintln(os.Stderr, "registrybench:", err)
		os.Exit(1)
	}
}

type row struct {
	what          string
	kappa, others float64 // MB/s, or seconds
	unit          string
	higherBetter  bool
	baselineLabel string
}

func run(kappa, dist, data, sizeList, work string, baseMB int) error {
	ctx := context.Background()
	lc := lambda.New(lambda.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		BaseEndpoint: aws.String("http://" + kappa),
		Retryer:      aws.NopRetryer{},
	})
	var rows []row
	for _, s := range strings.Split(sizeList, ",") {
		mb, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("size %q: %w", s, err)
		}
		img, err := randomImage(mb)
		if err != nil {
			return err
		}
		repo := fmt.Sprintf("bench/size%d", mb)
		label := fmt.Sprintf("%d MB", mb)

		// Each measure is the median of three runs, alternating between
		// the two registries; each push goes to a new repository, where
		// no blob exists yet.
		var kPushes, dPushes, kPulls, dPulls []time.Duration
		for i := range runs {
			r := fmt.Sprintf("%s-%d", repo, i)
			for _, m := range []struct {
				host string
				out  *[]time.Duration
			}{{kappa, &kPushes}, {dist, &dPushes}} {
				d, err := timed(func() error { return push(m.host, r, img) })
				if err != nil {
					return fmt.Errorf("push to %s: %w", m.host, err)
				}
				*m.out = append(*m.out, d)
			}
		}
		for range runs {
			for _, m := range []struct {
				host string
				out  *[]time.Duration
			}{{kappa, &kPulls}, {dist, &dPulls}} {
				d, err := timed(func() error { return pull(m.host, repo+"-0") })
				if err != nil {
					return fmt.Errorf("pull from %s: %w", m.host, err)
				}
				*m.out = append(*m.out, d)
			}
		}
		kPush, dPush, kPull, dPull := median(kPushes), median(dPushes), median(kPulls), median(dPulls)
		rows = append(rows, row{what: "push " + label, kappa: mbps(mb, kPush), others: mbps(mb, dPush), unit: "MB/s", higherBetter: true, baselineLabel: "Distribution"})
		rows = append(rows, row{what: "pull " + label, kappa: mbps(mb, kPull), others: mbps(mb, dPull), unit: "MB/s", higherBetter: true, baselineLabel: "Distribution"})

		active, err := timed(func() error { return createActive(ctx, lc, fmt.Sprintf("bench-%d", mb), kappa+"/"+repo+"-0:v1") })
		if err != nil {
			return fmt.Errorf("create to active: %w", err)
		}
		crane, err := timed(func() error { return craneBaseline(kappa+"/"+repo+"-0:v1", work) })
		if err != nil {
			return fmt.Errorf("crane baseline: %w", err)
		}
		rows = append(rows, row{what: "create-to-active " + label, kappa: active.Seconds(), others: crane.Seconds(), unit: "s", baselineLabel: "crane pull+export+untar"})
	}
	printRows(rows)
	return tenFunctions(ctx, lc, kappa, data, baseMB)
}

// runs is how many times each throughput is measured.
const runs = 3

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func mbps(mb int, d time.Duration) float64 { return float64(mb) / d.Seconds() }

// randomImage is a linux/amd64 image of mb megabytes of random content, in
// uncompressed tar layers of at most 128 MB (random data does not
// compress, and gzip would measure the CPU, not the registry).
func randomImage(mb int) (v1.Image, error) {
	const maxLayer = 128
	img := empty.Image
	for left := mb; left > 0; left -= maxLayer {
		l, err := randomLayer(min(left, maxLayer) << 20)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	return configure(img)
}

// randomLayer is an uncompressed tar layer holding one file of n random
// bytes.
func randomLayer(n int) (v1.Layer, error) {
	content := make([]byte, n)
	if _, err := rand.Read(content); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(n + 4096)
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: "data/" + strconv.FormatInt(time.Now().UnixNano(), 36), Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return static.NewLayer(buf.Bytes(), ggcrtypes.OCIUncompressedLayer), nil
}

func configure(img v1.Image) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/bootstrap"}
	return mutate.ConfigFile(img, cf)
}

func push(host, repo string, img v1.Image) error {
	ref, err := name.ParseReference(host+"/"+repo+":v1", name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(ref, img, remote.WithJobs(4))
}

// pull downloads every layer of host/repo:v1, four at a time, verifying
// digests as it reads, as a client pulling an image does.
func pull(host, repo string) error {
	ref, err := name.ParseReference(host+"/"+repo+":v1", name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(ref)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	errs := make(chan error, len(layers))
	for _, l := range layers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rc, err := l.Compressed()
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			if _, err := io.Copy(io.Discard, rc); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// createActive creates a function from image and waits until it is Active.
func createActive(ctx context.Context, lc *lambda.Client, fname, image string) error {
	_, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(fname),
		PackageType:  types.PackageTypeImage,
		Code:         &types.FunctionCode{ImageUri: aws.String(image)},
		Role:         aws.String("arn:aws:iam::000000000000:role/bench"),
	})
	if err != nil {
		return err
	}
	for {
		out, err := lc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(fname)})
		if err != nil {
			return err
		}
		switch out.Configuration.State {
		case types.StateActive:
			return nil
		case types.StateFailed:
			return errors.New(aws.ToString(out.Configuration.StateReason))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// craneBaseline is what a user without Kappa does to get a root
// filesystem: crane pull, crane export, untar.
func craneBaseline(image, work string) error {
	dir, err := os.MkdirTemp(work, "crane-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tarball := filepath.Join(dir, "image.tar")
	fsTar := filepath.Join(dir, "fs.tar")
	root := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"crane", "pull", "--insecure", image, tarball},
		{"sh", "-c", "crane export - " + fsTar + " < " + tarball},
		{"tar", "-xf", fsTar, "-C", root},
		{"sync", "-f", root},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func printRows(rows []row) {
	fmt.Printf("\n%-26s %12s %12s %8s  %s\n", "measure", "kappa", "baseline", "ratio", "baseline is")
	for _, r := range rows {
		ratio := r.kappa / r.others // throughput: >1 is better
		if !r.higherBetter {
			ratio = r.others / r.kappa // time: baseline/kappa, >1 is better
		}
		fmt.Printf("%-26s %8.1f %-4s %7.1f %-4s %7.2fx  %s\n", r.what, r.kappa, r.unit, r.others, r.unit, ratio, r.baselineLabel)
	}
	fmt.Println("(ratio > 1: Kappa is faster)")
}

// tenFunctions pushes ten images that share a base of baseMB, deploys a
// function from each, and reports the disk use of the layer store and the
// registry.
func tenFunctions(ctx context.Context, lc *lambda.Client, kappa, data string, baseMB int) error {
	layersDir := filepath.Join(data, "images", "layers")
	blobsDir := filepath.Join(data, "registry", "blobs")
	beforeLayers, err := du(layersDir)
	if err != nil {
		return err
	}
	beforeBlobs, err := du(blobsDir)
	if err != nil {
		return err
	}
	base, err := randomLayer(baseMB << 20)
	if err != nil {
		return err
	}
	for i := range 10 {
		own, err := randomLayer(1 << 20)
		if err != nil {
			return err
		}
		img, err := mutate.AppendLayers(empty.Image, base, own)
		if err != nil {
			return err
		}
		if img, err = configure(img); err != nil {
			return err
		}
		repo := fmt.Sprintf("bench/fn%d", i)
		if err := push(kappa, repo, img); err != nil {
			return err
		}
		if err := createActive(ctx, lc, fmt.Sprintf("bench-fn%d", i), kappa+"/"+repo+":v1"); err != nil {
			return err
		}
	}
	afterLayers, err := du(layersDir)
	if err != nil {
		return err
	}
	afterBlobs, err := du(blobsDir)
	if err != nil {
		return err
	}
	naive := 10 * (baseMB + 1)
	fmt.Printf("\nten functions on one %d MB base (+1 MB each): %d MB if each stored its own copy\n", baseMB, naive)
	fmt.Printf("  layer store (%s) grew by %.1f MB\n", layersDir, float64(afterLayers-beforeLayers)/(1<<20))
	fmt.Printf("  registry blobs (%s) grew by %.1f MB\n", blobsDir, float64(afterBlobs-beforeBlobs)/(1<<20))
	return nil
}

// du is the disk use of dir in bytes, as du -sb counts it.
func du(dir string) (int64, error) {
	out, err := exec.Command("du", "-sb", dir).Output()
	if err != nil {
		return 0, fmt.Errorf("du %s: %w", dir, err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0, fmt.Errorf("du %s: no output", dir)
	}
	return strconv.ParseInt(f[0], 10, 64)
}
