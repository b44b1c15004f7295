package service

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/service/etcd"
)

func TestEtcdPlanFrom3520(t *testing.T) {
	p, err := plan.Make(EtcdCatalog(), policy.MustParse("3.5.20"), policy.MustParse("3.7.3"), plan.Options{MinPatch: EtcdRules()})
	if err != nil {
		t.Fatal(err)
	}
	var stops []string
	for _, v := range p.Versions() {
		stops = append(stops, v.String())
	}
	if got, want := strings.Join(stops, " -> "), "3.5.20 -> 3.5.35 -> 3.6.16 -> 3.7.3"; got != want {
		t.Fatalf("plan = %s, want %s", got, want)
	}
	if r := p.Hops[0].Reason; !strings.Contains(r, "below 3.5.26") {
		t.Errorf("first hop's reason %q does not say why", r)
	}
}

func TestEtcdStatus(t *testing.T) {
	reps := []driver.Replica{
		{ID: "replica-1", Version: "3.6.16", URL: "http://a"},
		{ID: "replica-2", Version: "3.6.16", URL: "http://b"},
		{ID: "replica-3", Version: "3.5.35", URL: "http://c"},
	}
	member := func(ep string, id uint64, applied uint64, version string) etcd.Member {
		return etcd.Member{Endpoint: ep, Name: "m", Reachable: true, ID: id, LeaderID: 1, RaftAppliedIndex: applied,
			Version: version, Healthy: true, Ready: true, ClusterVersion: "3.5.0"}
	}
	tests := []struct {
		name        string
		members     []etcd.Member
		settled     bool
		version     string
		lagging     []string
		problemOf   string
		problemText string
	}{
		{name: "settled, mixed", members: []etcd.Member{member("http://a", 1, 1000, "3.6.16"), member("http://b", 2, 990, "3.6.16"),
			member("http://c", 3, 1000, "3.5.35")}, settled: true, version: "mixed", lagging: []string{}},
		{name: "one behind", members: []etcd.Member{member("http://a", 1, 1000, "3.6.16"), member("http://b", 2, 800, "3.6.16"),
			member("http://c", 3, 1000, "3.6.16")}, version: "3.6.16", lagging: []string{"replica-2"}},
		{name: "one frozen", members: []etcd.Member{member("http://a", 1, 1000, "3.6.16"), member("http://b", 2, 1000, "3.6.16"),
			{Endpoint: "http://c", Error: "does not answer within 1.5s (frozen or overloaded?)"}}, version: "mixed", lagging: []string{},
			problemOf: "replica-3", problemText: "does not answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := etcdStatus("kv", reps, etcd.Report{Members: tc.members, ClusterVersion: "3.5.0"})
			if st.Store.Settled != tc.settled || st.Version != tc.version || st.ClusterVersion != "3.5.0" {
				t.Errorf("settled %v version %s cluster version %s; want %v %s 3.5.0", st.Store.Settled, st.Version, st.ClusterVersion, tc.settled, tc.version)
			}
			if got := st.Store.Tables[0].Lagging; !slices.Equal(got, tc.lagging) {
				t.Errorf("lagging = %v, want %v", got, tc.lagging)
			}
			if tc.problemOf != "" {
				rs, _ := st.Replica(tc.problemOf)
				if !strings.Contains(rs.Problem(), tc.problemText) || !rs.Unresponsive {
					t.Errorf("%s: problem %q, unresponsive %v", tc.problemOf, rs.Problem(), rs.Unresponsive)
				}
			}
			if st.Leader() != "replica-1" {
				t.Errorf("leader = %q", st.Leader())
			}
		})
	}
}

func TestEtcdHopFinished(t *testing.T) {
	h := plan.Hop{From: policy.MustParse("3.6.16"), To: policy.MustParse("3.7.3")}
	app := &EtcdApp{}
	for _, tc := range []struct {
		cv string
		ok bool
	}{{"3.7.0", true}, {"3.6.0", false}, {"", false}} {
		st := etcdStatus("kv", nil, etcd.Report{ClusterVersion: tc.cv})
		ok, why := app.HopFinished(h, st)
		if ok != tc.ok || (!ok && !strings.Contains(why, "not yet 3.7")) {
			t.Errorf("cluster version %q: HopFinished = %v, %q", tc.cv, ok, why)
		}
	}
}

func TestEtcdPrepareHop(t *testing.T) {
	app := &EtcdApp{} // no data folders: the 3.7 precondition cannot be checked
	reps := []driver.Replica{{ID: "replica-1", Version: "3.6.16", URL: "http://127.0.0.1:1"}}
	hop := func(from, to string) plan.Hop {
		return plan.Hop{From: policy.MustParse(from), To: policy.MustParse(to)}
	}
	if did, err := app.PrepareHop(t.Context(), hop("3.5.35", "3.6.16"), reps); err != nil || did != nil {
		t.Errorf("hop to 3.6: PrepareHop = %v, %v; want nothing to do", did, err)
	}
	_, err := app.PrepareHop(t.Context(), hop("3.6.16", "3.7.3"), reps)
	if !errors.Is(err, ErrCannotCheckSnapshots) || !strings.Contains(err.Error(), "--snapshot-count") {
		t.Errorf("hop to 3.7 without data folders: PrepareHop = %v, want a refusal that names the fix", err)
	}
	done := []driver.Replica{{ID: "replica-1", Version: "3.7.3", URL: "http://127.0.0.1:1"}}
	if _, err := app.PrepareHop(t.Context(), hop("3.6.16", "3.7.3"), done); err != nil {
		t.Errorf("every member on 3.7: PrepareHop = %v", err)
	}
}

func TestEtcdCommand(t *testing.T) {
	p := driver.Placement{Cluster: "kv", ID: "replica-2", DataDir: "/d",
		Listen: map[string]string{EtcdPortClient: "0.0.0.0:2379", EtcdPortPeer: "0.0.0.0:2380"},
		Members: []driver.Member{
			{ID: "replica-1", Addr: map[string]string{EtcdPortClient: "h1:2379", EtcdPortPeer: "h1:2380"}},
			{ID: "replica-2", Addr: map[string]string{EtcdPortClient: "h2:2379", EtcdPortPeer: "h2:2380"}},
		}}
	got := strings.Join(Etcd{}.Command(driver.Artifact{}, p), " ")
	for _, want := range []string{"--name replica-2", "--data-dir /d", "--advertise-client-urls http://h2:2379",
		"--listen-peer-urls http://0.0.0.0:2380", "--initial-cluster replica-1=http://h1:2380,replica-2=http://h2:2380"} {
		if !strings.Contains(got, want) {
			t.Errorf("command %q lacks %q", got, want)
		}
	}
	if !(Etcd{}).PortConflict(1, `{"msg":"listen tcp 127.0.0.1:2379: bind: address already in use"}`) || (Etcd{}).PortConflict(1, "panic") {
		t.Error("PortConflict misreads etcd's exit")
	}
}

func TestEtcdArtifactNotBuilt(t *testing.T) {
	_, err := Etcd{CacheDir: t.TempDir()}.Artifact("3.6.16")
	if !errors.Is(err, driver.ErrNoArtifact) || !strings.Contains(err.Error(), "ladder releases fetch etcd 3.6.16") {
		t.Errorf("Artifact = %v, want ErrNoArtifact naming the fetch command", err)
	}
}
