package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/swarm"
)

// Constraint returns the Swarm placement constraint of a node choice: a
// hostname, or LABEL=VALUE for a node label.
func Constraint(node string) (string, error) {
	if node == "" {
		return "", fmt.Errorf("empty node name")
	}
	if k, v, ok := strings.Cut(node, "="); ok {
		if k == "" || v == "" || strings.ContainsAny(k+v, " =!") {
			return "", fmt.Errorf("node label %q: want LABEL=VALUE, as set with: docker node update --label-add LABEL=VALUE NODE", node)
		}
		return "node.labels." + k + "==" + v, nil
	}
	if strings.ContainsAny(node, " !") {
		return "", fmt.Errorf("node %q: want a hostname or LABEL=VALUE", node)
	}
	return "node.hostname==" + node, nil
}

// Assign places len(ids) replicas on nodes, round robin: replica i on
// nodes[i % len(nodes)]. One node takes every replica.
func Assign(ids, nodes []string) map[string]string {
	out := map[string]string{}
	for i, id := range ids {
		out[id] = nodes[i%len(nodes)]
	}
	return out
}

// matches reports whether node n satisfies the node choice.
func matches(n swarm.Node, choice string) bool {
	if k, v, ok := strings.Cut(choice, "="); ok {
		return n.Spec.Labels[k] == v
	}
	return n.Description.Hostname == choice
}

// nodeUp reports why a node cannot run a task, or "" if it can.
func nodeUp(n swarm.Node) string {
	switch {
	case n.Status.State != swarm.NodeStateReady:
		return fmt.Sprintf("node %s is %s", n.Description.Hostname, n.Status.State)
	case n.Spec.Availability != swarm.NodeAvailabilityActive:
		return fmt.Sprintf("node %s is %s (docker node update --availability active %s)", n.Description.Hostname, n.Spec.Availability, n.Description.Hostname)
	}
	return ""
}

// checkPlacement checks, for every node choice, that some node of the
// swarm matches it and is up.
func (d *Driver) checkPlacement(ctx context.Context, choices []string) error {
	nodes, err := d.nodes(ctx)
	if err != nil {
		return err
	}
	var hosts []string
	for _, n := range nodes {
		hosts = append(hosts, n.Description.Hostname)
	}
	slices.Sort(hosts)
	for _, c := range choices {
		if _, err := Constraint(c); err != nil {
			return err
		}
		var why []string
		ok := false
		for _, n := range nodes {
			if !matches(n, c) {
				continue
			}
			if w := nodeUp(n); w != "" {
				why = append(why, w)
				continue
			}
			ok = true
		}
		if ok {
			continue
		}
		if len(why) > 0 {
			return fmt.Errorf("place replicas on %s: %s", c, strings.Join(why, "; "))
		}
		return fmt.Errorf("place replicas on %s: no node of the swarm matches (nodes: %s; label one with: docker node update --label-add LABEL=VALUE NODE)",
			c, strings.Join(hosts, ", "))
	}
	return nil
}
