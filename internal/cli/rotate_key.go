package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
)

func newRotateKeyCmd(e *env) *cobra.Command {
	var cf clusterFlag
	c := &cobra.Command{
		Use:   "rotate-key",
		Short: "Replace the key that signs the registry's login tokens",
		Long: `Every replica signs and checks login tokens with one key kept in the
cluster's store. Rotate-key makes a new key: replicas sign with it within
10 seconds. Tokens signed with the key it replaces stay good until they
expire (access tokens live ` + registry.TokenTTL.String() + `); those signed with any older key
are refused at once, so rotating twice in a row logs everyone out: docker,
skopeo and the others then ask for a login again.`,
		Example: `  ladder cluster rotate-key --cluster prod`,
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			var got registry.RotatedKey
			err := onReplica(e, cf.name, func(ac registry.AdminClient) (err error) {
				got, err = ac.RotateKey(e.ctx)
				return err
			})
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, got)
			}
			fmt.Fprintf(e.stdout, "signing key rotated: new key %s (key %s still verifies until the next rotation)\n", got.KeyID, got.Previous)
			return nil
		},
	}
	cf.register(c)
	return c
}

// adminPasswordFrom reads the admin password of a new cluster from a file
// or standard input; "" (generate one) with neither.
func adminPasswordFrom(e *env, file string, stdin bool) (string, error) {
	switch {
	case file != "" && stdin:
		return "", usageErr("give the admin password with --admin-password-file or --admin-password-stdin, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageErr("read --admin-password-file: %v", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", usageErr("--admin-password-file %s is empty", file)
		}
		return pw, nil
	case stdin:
		return readPassword(e, "admin password", true, false)
	}
	return "", nil
}

// setAnonymousPull writes the cluster's anonymous-pull setting.
func setAnonymousPull(e *env, d driver.Driver, cluster string, on bool) error {
	_, rec, err := openCluster(cluster)
	if err != nil {
		return err
	}
	pw, err := rec.Secret(service.AdminPasswordSecret)
	if err != nil {
		return err
	}
	tc, err := e.clusterTLS(rec)
	if err != nil {
		return err
	}
	return onReplicaOf(e.ctx, d.Replicas, pw, adminHTTP(tc), func(ac registry.AdminClient) error {
		return ac.SetAuthSettings(e.ctx, registry.AuthSettings{AnonymousPull: on})
	})
}
