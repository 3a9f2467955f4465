//! The console in a real browser: headless Debian `chromium` against a daemon with a mixed
//! history (succeeded, failed with a 310 host, stuck, trigger failed, silenced). The test logs
//! in, reads the board, filters it, follows a check's strip to an execution page, sorts its
//! hosts, opens and searches a host's log, creates a silence through the page, and watches
//! the board refresh itself. Screenshots go to `target/artifacts/` (`$JOBWATCH_ARTIFACTS`).

mod common;

use std::time::Duration;

use common::browser::{Browser, artifacts};
use common::{TOKEN, get_json, runtime};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// `[check, status]` of every board row, in order.
const ROWS: &str = "[...document.querySelectorAll('#board tbody tr[data-check]')].map(r => [r.dataset.check, r.dataset.status])";

#[test]
fn an_operator_reads_the_board_follows_a_failure_to_its_hosts_and_logs_and_silences_it() {
    let rt = runtime();
    let console = common::Console::start(&rt);
    let base = console.daemon.base.clone();
    let shots = artifacts();
    rt.block_on(async {
        let mut b = Browser::start().await;

        // Without a token: the login prompt, no data.
        b.goto(&format!("{base}/")).await;
        b.wait_for("!!document.getElementById('login')", WAIT).await;
        let text = b.eval("document.body.innerText").await;
        assert!(!text.as_str().unwrap().contains("disk-check"), "data shown before login: {text}");
        // A wrong token is refused; the right one leads to the board.
        b.eval("document.getElementById('token').value = 'not-the-token'; document.getElementById('login').submit()").await;
        b.wait_loaded().await;
        b.wait_for("!!document.getElementById('login-error')", WAIT).await;
        b.eval(&format!("document.getElementById('token').value = '{TOKEN}'; document.getElementById('login').submit()")).await;
        b.wait_loaded().await;
        b.wait_for("!!document.getElementById('board')", WAIT).await;

        // The board: one row per check, the broken ones first, each in its state.
        let rows = b.eval(ROWS).await;
        assert_eq!(
            rows,
            json!([
                ["bad-account", "trigger_failed"],
                ["disk-check", "failed"],
                ["muted", "failed"],
                ["stuck-job", "stuck"],
                ["nightly-ok", "succeeded"]
            ]),
            "firing first, the worst first, then by name"
        );
        let row = |check: &str, js: &str| format!("(r => {js})(document.querySelector('#board tr[data-check=\"{check}\"]'))");
        assert_eq!(b.eval("document.getElementById('checks-total').textContent").await, "5");
        assert_eq!(b.eval(&row("nightly-ok", "r.querySelectorAll('.strip a.succeeded').length")).await, 3);
        assert_eq!(b.eval(&row("nightly-ok", "r.cells[6].textContent.trim()")).await, "100%");
        assert_eq!(b.eval(&row("disk-check", "r.cells[6].textContent.trim()")).await, "0%");
        let stuck = b.eval(&row("stuck-job", "r.innerText")).await;
        assert!(stuck.as_str().unwrap().contains("stuck:"), "the condition is shown: {stuck}");
        let bad = b.eval(&row("bad-account", "r.innerText")).await;
        assert!(bad.as_str().unwrap().contains("1244003"), "the platform's code is shown: {bad}");
        assert_eq!(b.eval(&row("muted", "r.querySelector('.alert .badge').textContent")).await, "silenced");
        assert_eq!(b.eval(&row("disk-check", "r.querySelector('.alert .badge').textContent")).await, "firing");
        let since = b.eval(&row("disk-check", "r.querySelector('.since').textContent")).await;
        assert!(since.as_str().unwrap().starts_with("since "), "{since}");
        let next = b.eval(&row("nightly-ok", "r.cells[3].textContent.trim()")).await;
        assert!(next.as_str().unwrap().starts_with("in "), "next run: {next}");
        b.screenshot(&shots.join("board.png")).await;

        // Filters: the rows shown change at once, the totals stay true, the URL says why.
        b.eval("const s = document.querySelector('#board-filters select[name=status]'); s.value = 'failed'; s.dispatchEvent(new Event('change', {bubbles: true}))").await;
        b.wait_for(&format!("JSON.stringify({ROWS}) === JSON.stringify([['disk-check','failed'],['muted','failed']])"), WAIT).await;
        assert_eq!(b.eval("document.getElementById('checks-shown').textContent").await, "2");
        assert_eq!(b.eval("document.getElementById('checks-total').textContent").await, "5");
        assert_eq!(b.eval("location.search").await, "?status=failed");
        b.eval("const q = document.querySelector('#board-filters input[name=q]'); q.value = 'disk'; q.dispatchEvent(new Event('input', {bubbles: true}))").await;
        b.wait_for(&format!("JSON.stringify({ROWS}) === JSON.stringify([['disk-check','failed']])"), WAIT).await;
        b.goto(&format!("{base}/")).await;

        // On a phone the page fits its width (wide tables scroll inside their box).
        b.viewport(390, 844, true).await;
        b.goto(&format!("{base}/")).await;
        let overflow = b.eval("document.documentElement.scrollWidth - window.innerWidth").await;
        assert!(overflow.as_i64().unwrap() <= 0, "the board is wider than a phone by {overflow} px");
        b.screenshot(&shots.join("board-phone.png")).await;
        b.viewport(1280, 900, false).await;
        b.goto(&format!("{base}/")).await;

        // The board refreshes itself: a new run shows up in the strip without a reload.
        b.eval("window.__same_page = true").await;
        common::start_execution(&base, "nightly-ok").await;
        b.wait_for(&row("nightly-ok", "r.querySelectorAll('.strip a.succeeded').length === 4"), Duration::from_secs(30)).await;
        assert_eq!(b.eval("window.__same_page === true").await, true, "the page was not reloaded");

        // Follow disk-check's strip to its execution page.
        b.eval(&row("disk-check", "r.querySelector('.strip a').click()")).await;
        b.wait_loaded().await;
        b.wait_for("!!document.getElementById('hosts')", WAIT).await;
        assert_eq!(b.eval("document.getElementById('state').textContent").await, "failed");
        let link = b.eval("document.querySelector('#job a').href").await;
        let link = link.as_str().unwrap();
        assert!(
            link.starts_with("https://job.example.com/biz/2/execute/task/") && link[43..].parse::<u64>().is_ok(),
            "the job instance links to bk-job's own page: {link}"
        );
        let hosts = b.eval("[...document.querySelectorAll('#hosts tbody tr')].map(r => [r.dataset.host, r.cells[3].textContent.trim(), r.cells[4].textContent.trim(), r.cells[5].textContent.trim()])").await;
        let hosts = hosts.as_array().unwrap();
        assert_eq!(hosts.len(), 3, "{hosts:?}");
        assert_eq!(hosts[2][0], "0:10.0.0.1 #101", "failing hosts first: {hosts:?}");
        let agent = hosts.iter().find(|h| h[0] == "0:10.0.0.2 #102").unwrap();
        assert_eq!(agent[1], "310", "{agent:?}");
        assert!(!agent[2].as_str().unwrap().is_empty() && !agent[3].as_str().unwrap().is_empty(), "labels in English and Chinese: {agent:?}");
        assert!(agent[3].as_str().unwrap().chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{agent:?}");
        // Sort by exit code, then back: the order follows the column.
        b.eval("document.querySelector('#hosts th:nth-child(7)').click()").await;
        let exits = b.eval("[...document.querySelectorAll('#hosts tbody tr')].map(r => r.cells[6].dataset.value)").await;
        let mut sorted: Vec<String> = exits.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        let shown = sorted.clone();
        sorted.sort_by_key(|v| v.parse::<f64>().unwrap_or(f64::NEG_INFINITY) as i64);
        assert_eq!(shown, sorted, "sorted by exit code");
        assert_eq!(b.eval("document.querySelector('#hosts th:nth-child(7)').getAttribute('aria-sort')").await, "ascending");
        // Its timeline and the alert it caused.
        let timeline = b.eval("document.getElementById('timeline').innerText").await;
        assert!(timeline.as_str().unwrap().contains("ended failed"), "{timeline}");
        let alerts = b.eval("document.getElementById('alerts').innerText").await;
        assert!(alerts.as_str().unwrap().contains("ExecutionFailed"), "{alerts}");
        assert_eq!(b.eval("document.querySelectorAll('#check-strip a').length").await, 1);
        b.screenshot(&shots.join("execution.png")).await;

        // A host's log: open it, search it, download it.
        b.eval("document.querySelector('#hosts tr[data-host=\"0:10.0.0.3 #103\"] td:nth-child(2) a').click()").await;
        b.wait_loaded().await;
        b.wait_for("!!document.getElementById('log')", WAIT).await;
        assert_eq!(b.eval("document.getElementById('log').textContent").await, "checking /data\nERROR: /data is 97% full\n");
        b.eval("const s = document.getElementById('log-search'); s.value = '97%'; s.dispatchEvent(new Event('input'))").await;
        assert_eq!(b.eval("document.getElementById('log-matches').textContent").await, "1 found");
        assert_eq!(b.eval("document.querySelector('#log mark').textContent").await, "97%");
        let href = b.eval("document.getElementById('download').href").await;
        let (status, _) = get_json(&base, href.as_str().unwrap().trim_start_matches(&base)).await;
        assert_eq!(status, 200, "the download link answers");

        // A silence made through the page covers disk-check's alert.
        b.goto(&format!("{base}/silences")).await;
        b.eval("document.getElementById('matchers').value = 'check=\"disk-check\"'; document.getElementById('comment').value = 'replacing /data on 10.0.0.3'; document.getElementById('new-silence').requestSubmit()").await;
        b.wait_for("[...document.querySelectorAll('#silences tr[data-silence]')].some(r => r.innerText.includes('check=\"disk-check\"'))", WAIT).await;
        let (_, list) = get_json(&base, "/v1/silences?state=active").await;
        let made: Vec<&Value> = list["silences"].as_array().unwrap().iter().filter(|s| s["matchers_text"] == "check=\"disk-check\"").collect();
        assert_eq!(made.len(), 1, "{list:#}");
        assert_eq!(made[0]["created_by"], "token", "the author is the logged-in token");
        assert_eq!(made[0]["comment"], "replacing /data on 10.0.0.3");
        b.goto(&format!("{base}/")).await;
        assert_eq!(b.eval(&row("disk-check", "r.querySelector('.alert .badge').textContent")).await, "silenced");
        // …and expired again from the page.
        b.goto(&format!("{base}/silences")).await;
        let id = made[0]["id"].as_str().unwrap();
        b.eval(&format!("document.querySelector('tr[data-silence=\"{id}\"] button[data-delete]').click()")).await;
        b.wait_for(&format!("(r => r && r.dataset.state === 'expired')(document.querySelector('tr[data-silence=\"{id}\"]'))"), WAIT).await;

        // A silence for later, with a start and an end in the browser's local time.
        b.goto(&format!("{base}/silences")).await;
        b.eval("const local = (ms) => { const d = new Date(Date.now() + ms); d.setMinutes(d.getMinutes() - d.getTimezoneOffset()); return d.toISOString().slice(0, 16); };\
                document.getElementById('matchers').value = 'check=\"nightly-ok\"';\
                document.getElementById('starts_at').value = local(3600e3);\
                document.getElementById('ends_at').value = local(3 * 3600e3);\
                document.getElementById('comment').value = 'upgrade window';\
                document.getElementById('new-silence').requestSubmit()").await;
        b.wait_for("[...document.querySelectorAll('#silences tr[data-silence]')].some(r => r.innerText.includes('check=\"nightly-ok\"') && r.dataset.state === 'pending')", WAIT).await;
        let (_, pending) = get_json(&base, "/v1/silences?state=pending").await;
        let later = &pending["silences"][0];
        let span = later["ends_at_ms"].as_i64().unwrap() - later["starts_at_ms"].as_i64().unwrap();
        assert_eq!(span / 60_000, 120, "two hours apart, to the minute: {later:#}");

        // The alerts page lists what fires, and which silence covers it.
        b.goto(&format!("{base}/alerts")).await;
        let firing = b.eval("[...document.querySelectorAll('#firing tr[data-fingerprint]')].map(r => [r.dataset.check, r.dataset.alertname, !!r.querySelector('.silenced')])").await;
        let firing = firing.as_array().unwrap();
        assert!(firing.contains(&json!(["muted", "ExecutionFailed", true])), "{firing:?}");
        assert!(firing.contains(&json!(["disk-check", "ExecutionFailed", false])), "{firing:?}");
    });
}
