package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
)

// registryClient talks to a Kappa server's registry and its management
// API.
type registryClient struct {
	endpoint string
	user     string
	password string
	http     *http.Client
}

func newRegistryCmd() *cobra.Command {
	c := &registryClient{http: &http.Client{Timeout: 30 * time.Minute}}
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Manage the embedded registry: garbage collection, tag immutability, listings",
		Long: `Manage the embedded registry of a Kappa server.

Credentials, when the server requires them, come from --user/--password
(env KAPPA_REGISTRY_USER, KAPPA_REGISTRY_PASSWORD), else from the docker
config (what 'crane auth login', 'docker login' or 'podman login' stored
for the server's host:port).`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&c.endpoint, "endpoint", envOr("KAPPA_ENDPOINT", "http://127.0.0.1:9070"), "Kappa server URL (env KAPPA_ENDPOINT)")
	pf.StringVar(&c.user, "user", envOr("KAPPA_REGISTRY_USER", ""), "registry user (env KAPPA_REGISTRY_USER)")
	pf.StringVar(&c.password, "password", envOr("KAPPA_REGISTRY_PASSWORD", ""), "registry password (env KAPPA_REGISTRY_PASSWORD)")

	var dryRun bool
	var grace time.Duration
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove registry blobs no manifest references and unpacked layers no image needs",
		Long: `Remove the registry blobs that no manifest of any repository references and
that no function version uses, then the unpacked layers that neither a
function version nor a registry image needs. Blobs written or shown to a
client less than --grace ago are kept, so it is safe while pushes run;
--grace 0s removes them too (only safe when nothing is being pushed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if dryRun {
				q.Set("dryRun", "true")
			}
			if cmd.Flags().Changed("grace") {
				q.Set("grace", grace.String())
			}
			return c.call(cmd, http.MethodPost, "/kappa/registry/gc?"+q.Encode(), nil)
		},
	}
	gc.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed, remove nothing")
	gc.Flags().DurationVar(&grace, "grace", time.Hour, "keep unreferenced content younger than this")

	setMutability := func(use, short, value string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " REPOSITORY",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				body, _ := json.Marshal(map[string]string{"tagMutability": value})
				return c.call(cmd, http.MethodPut, settingsPath(args[0]), body)
			},
		}
	}
	settings := &cobra.Command{
		Use:   "settings REPOSITORY",
		Short: "Show a repository's settings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.call(cmd, http.MethodGet, settingsPath(args[0]), nil)
		},
	}
	repos := &cobra.Command{
		Use:   "repos",
		Short: "List repositories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := c.registry()
			if err != nil {
				return err
			}
			names, err := remote.Catalog(cmd.Context(), reg, remote.WithAuth(c.auth(reg)))
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	tags := &cobra.Command{
		Use:   "tags REPOSITORY",
		Short: "List a repository's tags",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := c.registry()
			if err != nil {
				return err
			}
			repo, err := name.NewRepository(reg.Name()+"/"+args[0], name.Insecure)
			if err != nil {
				return usageError{err}
			}
			list, err := remote.List(repo, remote.WithContext(cmd.Context()), remote.WithAuth(c.auth(reg)))
			if err != nil {
				return err
			}
			for _, t := range list {
				fmt.Fprintln(cmd.OutOrStdout(), t)
			}
			return nil
		},
	}
	cmd.AddCommand(gc,
		setMutability("immutable", "Make a repository's tags immutable: pushing an existing tag again with other content fails", "IMMUTABLE"),
		setMutability("mutable", "Let a repository's tags be moved again (the default)", "MUTABLE"),
		settings, repos, tags)
	return cmd
}

func settingsPath(repo string) string {
	return "/kappa/registry/repositories/" + strings.Trim(repo, "/") + "/settings"
}

// registry returns the registry of the endpoint.
func (c *registryClient) registry() (name.Registry, error) {
	u, err := url.Parse(c.endpoint)
	if err != nil || u.Host == "" {
		return name.Registry{}, usageError{fmt.Errorf("--endpoint %q: want a URL such as http://127.0.0.1:9070", c.endpoint)}
	}
	opts := []name.Option{}
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	return name.NewRegistry(u.Host, opts...)
}

// auth returns the credentials for reg: the flags, else the docker config.
func (c *registryClient) auth(reg name.Registry) authn.Authenticator {
	if c.user != "" {
		return authn.FromConfig(authn.AuthConfig{Username: c.user, Password: c.password})
	}
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		return authn.Anonymous
	}
	return a
}

// call sends a management API request with Basic credentials, when there
// are any, and prints the JSON answer.
func (c *registryClient) call(cmd *cobra.Command, method, path string, body []byte) error {
	reg, err := c.registry()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(cmd.Context(), method, strings.TrimSuffix(c.endpoint, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cfg, err := c.auth(reg).Authorization(); err == nil && cfg.Username != "" {
		req.SetBasicAuth(cfg.Username, cfg.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if json.Unmarshal(out, &e) == nil && len(e.Errors) > 0 {
			return fmt.Errorf("%s %s: %s: %s", method, path, e.Errors[0].Code, e.Errors[0].Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	_, err = cmd.OutOrStdout().Write(out)
	return err
}
