package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Encode writes g as text that Decode reads back: how the process that
// made a group hands it to the one that kills and removes it (a run's stub
// to its cleanup sidecar). One field a line, each value quoted.
func (g *Group) Encode() string {
	var b strings.Builder
	line := func(key string, vals ...string) {
		b.WriteString(key)
		for _, v := range vals {
			b.WriteString(" " + strconv.Quote(v))
		}
		b.WriteByte('\n')
	}
	line("name", g.name)
	line("kill", g.kill)
	line("limits", itoa(g.lim.Memory), strconv.FormatFloat(g.lim.CPUs, 'g', -1, 64), itoa(g.lim.Pids))
	if g.v2 != "" {
		line("v2", g.v2)
	}
	for _, d := range g.v1 {
		line("v1", d)
	}
	for c, p := range g.ctl {
		line("ctl", c, p.dir, strconv.FormatBool(p.v2))
	}
	return b.String()
}

// Decode reads a group that Encode wrote.
func Decode(s string) (*Group, error) {
	g := &Group{fs: sysFS, ctl: map[string]place{}}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), " ")
		var vals []string
		for rest != "" {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("cgroup: decode %q: %w", sc.Text(), err)
			}
			v, _ := strconv.Unquote(q)
			vals = append(vals, v)
			rest = strings.TrimPrefix(rest[len(q):], " ")
		}
		var err error
		switch {
		case key == "name" && len(vals) == 1:
			g.name = vals[0]
		case key == "kill" && len(vals) == 1:
			g.kill = vals[0]
		case key == "limits" && len(vals) == 3:
			g.lim.Memory, err = strconv.ParseInt(vals[0], 10, 64)
			if err == nil {
				g.lim.CPUs, err = strconv.ParseFloat(vals[1], 64)
			}
			if err == nil {
				g.lim.Pids, err = strconv.ParseInt(vals[2], 10, 64)
			}
		case key == "v2" && len(vals) == 1:
			g.v2 = vals[0]
		case key == "v1" && len(vals) == 1:
			g.v1 = append(g.v1, vals[0])
		case key == "ctl" && len(vals) == 3:
			g.ctl[vals[0]] = place{dir: vals[1], v2: vals[2] == "true"}
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup: decode %q: %w", sc.Text(), err)
		}
	}
	if g.name == "" || (g.v2 == "" && len(g.v1) == 0) {
		return nil, errors.New("cgroup: decode: no group")
	}
	return g, nil
}
