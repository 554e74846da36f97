package profilegen

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Small structured files. Their content is plausible, not exact: enough for
// a human or a tool glancing at the tree to recognise a Chromium profile.

const (
	chromiumVersion = "156.0.7509.0"
	// fakeProfileRoot is the absolute path written into LOG files. It is
	// fixed, so the tree does not depend on where it is generated.
	fakeProfileRoot = "/app/.wwebjs_auth/RemoteAuth-demo"
	idbComparator   = "idb_cmp1"
	lsComparator    = "leveldb.BytewiseComparator"
	waOrigin        = "https://web.whatsapp.com"
)

func newRand(seed [32]byte) *rand.Rand { return rand.New(rand.NewChaCha8(seed)) }

// textGen makes the structured files; all randomness comes from r.
type textGen struct {
	r     *rand.Rand
	start time.Time // when the profile was "created"
}

func newTextGen(r *rand.Rand) *textGen {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &textGen{r: r, start: base.Add(time.Duration(r.Int64N(150*24*3600)) * time.Second)}
}

// chromeTime is Chromium's base::Time serialisation: microseconds since 1601.
func chromeTime(t time.Time) string {
	return fmt.Sprint(t.UnixMicro() + 11644473600*1000000)
}

func (g *textGen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.r.IntN(16)]
	}
	return string(b)
}

func (g *textGen) uuid() string {
	h := g.hex(32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

func (g *textGen) b64(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(64)]
	}
	return string(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v) // maps marshal with sorted keys: deterministic
	if err != nil {
		panic(err)
	}
	return b
}

func (g *textGen) localState() []byte {
	return mustJSON(map[string]any{
		"browser": map[string]any{
			"enabled_labs_experiments": []string{},
			"last_redirect_origin":     "",
		},
		"hardware_acceleration_mode_previous": false,
		"legacy":                              map[string]any{"profile": map[string]any{"name": map[string]any{"migrated": true}}},
		"os_crypt":                            map[string]any{"portal": map[string]any{"prev_init_success": false}},
		"profile": map[string]any{
			"info_cache": map[string]any{"Default": map[string]any{
				"active_time": float64(g.start.Unix()) + 0.123, "avatar_icon": "chrome://theme/IDR_PROFILE_AVATAR_26",
				"background_apps": false, "is_ephemeral": false, "is_using_default_avatar": true,
				"is_using_default_name": true, "managed_user_id": "", "metrics_bucket_index": 1, "name": "Person 1",
			}},
			"last_active_profiles": []string{"Default"}, "last_used": "Default", "profile_counts_reported": chromeTime(g.start),
			"profiles_order": []string{"Default"},
		},
		"subresource_filter": map[string]any{"ruleset_version": map[string]any{"checksum": g.r.IntN(1 << 30), "content": "9.59.0", "format": 37}},
		"uninstall_metrics":  map[string]any{"installation_date2": fmt.Sprint(g.start.Unix())},
		"user_experience_metrics": map[string]any{
			"client_id2": g.uuid(), "limited_entropy_randomization_source": g.hex(32),
			"low_entropy_source3": g.r.IntN(8000), "pseudo_low_entropy_source": g.r.IntN(8000),
			"session_id": g.r.IntN(40), "stability": map[string]any{"browser_last_live_timestamp": chromeTime(g.start.Add(time.Hour)), "exited_cleanly": true, "stats_buildtime": "1775000000", "stats_version": chromiumVersion + "-64"},
		},
		"variations_compressed_seed": g.b64(2048),
		"variations_seed_date":       chromeTime(g.start),
		"variations_seed_signature":  g.b64(96),
		"was":                        map[string]any{"restarted": false},
	})
}

func (g *textGen) preferences() []byte {
	site := func() map[string]any {
		return map[string]any{"last_modified": chromeTime(g.start.Add(time.Duration(g.r.IntN(3600)) * time.Second)), "setting": 1}
	}
	engagement := map[string]any{}
	for _, o := range []string{waOrigin + ":443,*", "https://static.whatsapp.net:443,*", "https://mmg.whatsapp.net:443,*"} {
		engagement[o] = map[string]any{"last_modified": chromeTime(g.start), "setting": map[string]any{
			"lastEngagementTime": 1.3e16 + float64(g.r.IntN(1e9)), "lastShortcutLaunchTime": 0.0,
			"pointsAddedToday": float64(g.r.IntN(15)) + 0.5, "rawScore": float64(g.r.IntN(60)) + 0.25}}
	}
	return mustJSON(map[string]any{
		"accessibility":        map[string]any{"captions": map[string]any{"headless_caption_enabled": false}},
		"autofill":             map[string]any{"last_version_deduped": 156},
		"browser":              map[string]any{"has_seen_welcome_page": false, "window_placement": map[string]any{"bottom": 1090, "left": 10, "maximized": false, "right": 1930, "top": 10, "work_area_bottom": 1080, "work_area_left": 0, "work_area_right": 1920, "work_area_top": 0}},
		"countryid_at_install": 17989,
		"domain_diversity":     map[string]any{"last_reporting_timestamp": chromeTime(g.start)},
		"download":             map[string]any{"directory_upgrade": true},
		"extensions":           map[string]any{"alerts": map[string]any{"initialized": true}, "chrome_url_overrides": map[string]any{}, "last_chrome_version": chromiumVersion},
		"gcm":                  map[string]any{"product_category_for_subtypes": "org.chromium.linux"},
		"intl":                 map[string]any{"selected_languages": "en-US,en"},
		"profile": map[string]any{
			"avatar_index": 26, "created_by_version": chromiumVersion, "creation_time": chromeTime(g.start),
			"exit_type": "Normal", "last_engagement_time": chromeTime(g.start.Add(2 * time.Hour)), "name": "Person 1",
			"content_settings": map[string]any{"exceptions": map[string]any{
				"notifications":             map[string]any{waOrigin + ":443,*": site()},
				"site_engagement":           engagement,
				"media_engagement":          map[string]any{waOrigin + ":443,*": site()},
				"durable_storage":           map[string]any{waOrigin + ":443,*": site()},
				"javascript_jit":            map[string]any{},
				"app_banner":                map[string]any{waOrigin + ":443,*": map[string]any{"last_modified": chromeTime(g.start), "setting": map[string]any{"https://web.whatsapp.com/": map[string]any{"couldShowBannerEvents": 1.3e16 + float64(g.r.IntN(1e9)), "next_install_text_animation": map[string]any{"delay": "86400000000", "last_shown": chromeTime(g.start)}}}}},
				"client_hints":              map[string]any{waOrigin + ":443,*": map[string]any{"last_modified": chromeTime(g.start), "setting": map[string]any{"client_hints": []int{9, 10, 11, 13, 14, 16, 23, 25, 29}}}},
				"cookie_controls_metadata":  map[string]any{"https://[*.]whatsapp.com,*": map[string]any{"last_modified": chromeTime(g.start), "setting": map[string]any{}}},
				"https_enforced":            map[string]any{},
				"storage_access_header_ori": map[string]any{},
			}},
		},
		"sessions":   map[string]any{"event_log": []any{map[string]any{"crashed": false, "time": chromeTime(g.start), "type": 0}, map[string]any{"did_schedule_command": true, "first_session_service": true, "tab_count": 1, "time": chromeTime(g.start.Add(time.Minute)), "type": 2, "window_count": 1}}, "session_data_status": 3},
		"settings":   map[string]any{"force_google_safesearch": false},
		"spellcheck": map[string]any{"dictionaries": []string{"en-US"}},
		"translate":  map[string]any{"blocked_languages": []string{"en"}},
	})
}

func (g *textGen) securePreferences() []byte {
	macs := map[string]any{}
	for _, k := range []string{"account_values", "browser", "default_search_provider_data", "enterprise_signin", "extensions", "google", "homepage", "homepage_is_newtabpage", "media", "pinned_tabs", "prefs", "safebrowsing", "search_provider_overrides", "session"} {
		macs[k] = strings.ToUpper(g.hex(64))
	}
	return mustJSON(map[string]any{
		"extensions": map[string]any{"settings": map[string]any{}},
		"protection": map[string]any{"macs": macs, "super_mac": strings.ToUpper(g.hex(64))},
	})
}

func (g *textGen) networkPersistentState() []byte {
	var servers []any
	for _, h := range []string{"web.whatsapp.com", "static.whatsapp.net", "mmg.whatsapp.net", "media-fra5-1.cdn.whatsapp.net", "pps.whatsapp.net", "crashlogs.whatsapp.net"} {
		servers = append(servers, map[string]any{
			"anonymization": []string{g.b64(40)}, "server": "https://" + h,
			"supports_spdy": true, "network_stats": map[string]any{"srtt": 20000 + g.r.IntN(40000)},
			"alternative_service": []any{map[string]any{"advertised_alpns": []string{"h3"}, "expiration": chromeTime(g.start.Add(30 * 24 * time.Hour)), "port": 443, "protocol_str": "quic"}},
		})
	}
	return mustJSON(map[string]any{"net": map[string]any{"http_server_properties": map[string]any{"servers": servers, "version": 5}, "network_qualities": map[string]any{g.b64(44): "4G"}}})
}

func (g *textGen) transportSecurity() []byte {
	var sts []any
	for i := 0; i < 8; i++ {
		sts = append(sts, map[string]any{"expiry": float64(g.start.Unix()+31536000) + g.r.Float64(), "host": g.b64(43) + "=", "mode": "force-https", "sts_include_subdomains": i%2 == 0, "sts_observed": float64(g.start.Unix()) + g.r.Float64()})
	}
	return mustJSON(map[string]any{"sts": sts, "version": 2})
}

func (g *textGen) variations() []byte {
	return mustJSON(map[string]any{"user_data_dir": map[string]any{"variations_crash_streak": 0, "variations_failed_to_fetch_seed_streak": 0}})
}

// cacheStorageIndex is Service Worker/CacheStorage/<origin>/index.txt, a
// serialised proto naming the caches of an origin.
func (g *textGen) cacheStorageIndex(names, uuids []string) []byte {
	var b []byte
	for i := range names {
		var c []byte
		c = append(c, 0x0a, byte(len(names[i])))
		c = append(c, names[i]...)
		c = append(c, 0x1a, byte(len(uuids[i])))
		c = append(c, uuids[i]...)
		c = append(c, 0x20)
		c = binary.AppendUvarint(c, uint64(1<<20+g.r.IntN(1<<28)))
		b = append(b, 0x0a, byte(len(c)))
		b = append(b, c...)
	}
	b = append(b, 0x12, byte(len(waOrigin)+1))
	b = append(b, waOrigin+"/"...)
	return b
}

// leveldbLOG is the info log LevelDB writes next to a database: its creation
// and one flush or compaction line pair per table.
func (g *textGen) leveldbLOG(rel string, tables []tableMeta) []byte {
	var sb strings.Builder
	t := g.start.Add(time.Duration(g.r.IntN(600)) * time.Second)
	thread := g.hex(4)
	line := func(format string, args ...any) {
		t = t.Add(time.Duration(g.r.IntN(90_000_000_000)))
		fmt.Fprintf(&sb, "%s %s ", t.Format("2006/01/02-15:04:05.000000"), thread)
		fmt.Fprintf(&sb, format, args...)
		sb.WriteByte('\n')
	}
	path := fakeProfileRoot + "/" + rel
	line("Creating DB %s since it was missing.", path)
	line("Reusing MANIFEST %s/MANIFEST-000001", path)
	for _, tb := range tables {
		if tb.level == 0 {
			line("Level-0 table #%d: started", tb.number)
			line("Level-0 table #%d: %d bytes OK", tb.number, tb.size)
		} else {
			line("Compacting 1@%d + 1@%d files", tb.level-1, tb.level)
			line("Generated table #%d@%d: %d keys, %d bytes", tb.number, tb.level, 1000+g.r.IntN(20000), tb.size)
		}
	}
	return []byte(sb.String())
}

// sqliteHeader is the 100-byte header of an SQLite database of size bytes
// (4 KiB pages).
func sqliteHeader(size int64) []byte {
	h := make([]byte, 100)
	copy(h, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(h[16:], 4096)
	h[18], h[19], h[21], h[22], h[23] = 1, 1, 64, 32, 32
	binary.BigEndian.PutUint32(h[24:], 7)
	binary.BigEndian.PutUint32(h[28:], uint32(size/4096))
	binary.BigEndian.PutUint32(h[44:], 4) // schema format
	binary.BigEndian.PutUint32(h[56:], 1) // UTF-8
	binary.BigEndian.PutUint32(h[92:], 7)
	binary.BigEndian.PutUint32(h[96:], 3046000)
	return h
}
