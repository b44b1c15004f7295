package swarm

import "context"

// ProbeImage exposes probeImage to the tests, on this engine's node.
func (d *Driver) ProbeImage(ctx context.Context, image string) error {
	return d.probeImage(ctx, d.self, image, "ladder")
}
