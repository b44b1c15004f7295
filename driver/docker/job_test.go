package docker_test

import (
	"testing"

	"github.com/ladder-dev/ladder/driver/docker"
)

func TestJobSlug(t *testing.T) {
	tests := []struct {
		name, job, want string
	}{
		{name: "kept", job: "migrate-3", want: "migrate-3"},
		{name: "lower case", job: "Seed", want: "seed"},
		{name: "other runes", job: "gc: blobs/all", want: "gc--blobs-all"},
		{name: "trimmed", job: "_check_", want: "check"},
		{name: "nothing left", job: "__", want: "job"},
		{name: "cut", job: "a-very-long-job-name-indeed", want: "a-very-long-job-name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := docker.JobSlug(tc.job); got != tc.want {
				t.Errorf("JobSlug(%q) = %q, want %q", tc.job, got, tc.want)
			}
		})
	}
}
