package cli

import (
	"errors"
	"fmt"

	"github.com/Masterminds/semver/v3"
	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/service"
)

// releaseFlags are the flags shared by commands that reason about versions.
type releaseFlags struct {
	catalogFile     string
	allowPrerelease bool
	// service names whose releases and rules apply.
	service string
}

func (f *releaseFlags) register(c *cobra.Command, prerelease bool) {
	c.Flags().StringVar(&f.catalogFile, "catalog", "", "release catalog `FILE` (YAML or JSON with a releases list); default: the built-in catalog")
	_ = c.MarkFlagFilename("catalog", "yaml", "yml", "json")
	c.Flags().StringVar(&f.service, "service", service.RegistryName, "the service whose releases and rules apply: "+joinOr(serviceNames))
	_ = c.RegisterFlagCompletionFunc("service", completeServices)
	if prerelease {
		c.Flags().BoolVar(&f.allowPrerelease, "allow-prerelease", false, "allow a pre-release as the target")
	}
}

// load returns the catalog the flags name.
func (f *releaseFlags) load() (*catalog.Catalog, error) {
	if f.catalogFile == "" {
		p, err := profileOf(f.service)
		if err != nil {
			return nil, err
		}
		return p.catalog(), nil
	}
	c, err := catalog.Load(f.catalogFile)
	if err != nil {
		return nil, withCode(ExitUsage, err)
	}
	return c, nil
}

// profile returns the profile of the service the flags name.
func (f *releaseFlags) profile() (profile, error) { return profileOf(f.service) }

// transition parses the FROM and TO arguments and loads the catalog.
func (f *releaseFlags) transition(args []string) (from, to *semver.Version, cat *catalog.Catalog, err error) {
	if from, err = parseVersion("FROM", args[0]); err != nil {
		return nil, nil, nil, err
	}
	if to, err = parseVersion("TO", args[1]); err != nil {
		return nil, nil, nil, err
	}
	if cat, err = f.load(); err != nil {
		return nil, nil, nil, err
	}
	return from, to, cat, nil
}

// parseVersion parses a version argument; a bad one is a usage error.
func parseVersion(what, s string) (*semver.Version, error) {
	v, err := policy.Parse(s)
	if err != nil {
		if errors.Is(err, policy.ErrInvalidVersion) {
			return nil, usageErr("%s: %w", what, err)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// completeVersions offers the catalog's releases for positional arguments.
// completeVersions completes releases of the catalog f names, for the
// first max arguments (max < 0: for a flag).
func completeVersions(f *releaseFlags, max int) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if max >= 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cat, err := f.load()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []string
		for _, r := range cat.Releases() {
			out = append(out, r.Version.String())
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// versionFlag completes a flag that takes a release.
var versionFlag = completeVersions(&releaseFlags{}, -1)

// driverFlag completes --driver.
var driverFlag = cobra.FixedCompletions([]string{"local", "docker", "swarm"}, cobra.ShellCompDirectiveNoFileComp)
