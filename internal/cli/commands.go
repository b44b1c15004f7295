package cli

import "github.com/spf13/cobra"

// commands lists ladder's top-level commands.
func commands(e *env) []*cobra.Command {
	return []*cobra.Command{
		newCheckCmd(e),
		newPlanCmd(e),
		newCatalogCmd(e),
		newClusterCmd(e),
		newUpgradeCmd(e),
		newStatusCmd(e),
		newRestartCmd(e, "ladder restart"),
		newDemoCmd(e),
		newImagesCmd(e),
		newRegistryCmd(e),
		newUsersCmd(e),
		newVersionCmd(e),
		newReleasesCmd(e),
	}
}
