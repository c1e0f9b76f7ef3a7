"""`storytelling rate`: the blind pairwise rating page, its votes and what they say."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from story_env.errors import ConfigError
from story_env.prompts import PAPER_PROMPT
from story_env.run.cli import main
from story_env.run.rating import RatedStory, RatingDB
from story_env.run.rating_stats import (
    ConvergenceError,
    bradley_terry,
    fit_bradley_terry,
    results,
    results_text,
    wilson,
)
from story_env.run.rating_web import create_app

HOSTILE = '<script>alert("x")</script><b>bold</b> & <img src=x onerror=alert(1)>'


def _eval_json(path, letter, n=4, seed=0, extra=""):
    """A file shaped as `storytelling eval --json` writes it."""
    texts = [f"{letter} wrote story {i}. {extra}" for i in range(n)]
    summary = {"stories": n, "seed": seed, "teacher": "heuristic", "texts": texts, "judges": {}}
    path.write_text(json.dumps(summary), encoding="utf-8")
    return str(path)


@pytest.fixture
def two_sources(tmp_path):
    a = _eval_json(tmp_path / "a.json", "A")
    b = _eval_json(tmp_path / "b.json", "B", extra=HOSTILE)
    db = tmp_path / "ratings.db"
    assert main(["rate", a, b, "--db", str(db), "--prepare-only", "--grader", "heuristic"]) == 0
    return db


def _form(html):
    """The hidden fields of the vote form a page shows."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert fields, html
    return fields


def _vote(client, rater, choice):
    """Answer the pair the page shows ``rater``; the form's pair token."""
    fields = _form(client.get("/", params={"rater": rater}).text)
    answer = client.post("/vote", data={**fields, "choice": choice}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return fields["pair"]


def test_a_vote_is_stored_with_its_pair_sides_rater_and_time(two_sources):
    client = TestClient(create_app(two_sources))
    assert 'name="rater"' in client.get("/").text  # no name yet: the name form
    shown = RatingDB(two_sources).next_pair("alice")
    assert _vote(client, "alice", "left") == shown.token
    (vote,) = RatingDB(two_sources).votes()
    assert (vote["pair"], vote["rater"], vote["choice"], vote["left_story"]) == (
        shown.id,
        "alice",
        "left",
        shown.left["id"],
    )
    assert {vote["left_system"], vote["right_system"]} == {
        str((two_sources.parent / "a.json").resolve()),
        str((two_sources.parent / "b.json").resolve()),
    }
    assert vote["winner"] == vote["left_system"] and vote["voted_at"].startswith("20")
    assert vote["prompt"] == PAPER_PROMPT


def test_the_page_hides_the_systems_and_shows_progress(two_sources):
    html = TestClient(create_app(two_sources)).get("/", params={"rater": "alice"}).text
    assert "a.json" not in html and "b.json" not in html
    assert "pair 1 of 4" in html and "(0 answered)" in html
    assert 'id="choice-tie"' in html and 'id="choice-skip"' in html and "keydown" in html


def test_a_session_resumes_after_a_restart_without_the_pairs_already_answered(two_sources):
    first = TestClient(create_app(two_sources))
    answered = {_vote(first, "alice", "left"), _vote(first, "alice", "skip")}
    again = TestClient(create_app(two_sources))  # a new server over the same file
    page = again.get("/", params={"rater": "alice"}).text
    assert "pair 3 of 4" in page and _form(page)["pair"] not in answered
    answered |= {_vote(again, "alice", "tie"), _vote(again, "alice", "right")}
    assert len(answered) == 4
    assert "All done" in again.get("/", params={"rater": "alice"}).text
    # another rater still sees every pair; the cookie brings a returning rater back
    assert "pair 1 of 4" in again.get("/", params={"rater": "bob"}).text
    assert again.get("/", follow_redirects=False).headers["location"] == "/?rater=bob"


def test_a_repeated_submit_stores_one_vote(two_sources):
    client = TestClient(create_app(two_sources))
    shown = RatingDB(two_sources).next_pair("alice")
    form = _form(client.get("/", params={"rater": "alice"}).text)
    for choice in ("left", "right"):  # a double click, then a changed mind: the first counts
        assert client.post("/vote", data={**form, "choice": choice}).status_code == 200
    votes = RatingDB(two_sources).votes()
    assert [(v["pair"], v["choice"]) for v in votes] == [(shown.id, "left")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"choice": "best"}, "is not one of left, right, tie, skip"),
        ({"pair": "0" * 32}, "is not one the page showed rater &#39;alice&#39;"),
        ({"pair": "1"}, "is not one the page showed"),  # a bare pair id is no token
        ({"rater": "bob"}, "is not one the page showed rater &#39;bob&#39;"),  # alice's form
        ({"rater": " "}, "give a rater name"),
    ],
)
def test_a_bad_vote_is_refused_with_the_reason(two_sources, change, message):
    client = TestClient(create_app(two_sources))
    form = {**_form(client.get("/", params={"rater": "alice"}).text), "choice": "left", **change}
    answer = client.post("/vote", data=form)
    assert answer.status_code == 400 and message in answer.text
    assert RatingDB(two_sources).votes() == []


def test_the_pair_page_gives_away_no_story_or_pair_id_and_no_results_link(two_sources):
    client = TestClient(create_app(two_sources))
    html = client.get("/", params={"rater": "alice"}).text
    shown = RatingDB(two_sources).next_pair("alice")
    fields = _form(html)
    assert set(fields) == {"rater", "pair", "csrf"}  # no story id ("left") in the form
    assert re.fullmatch(r"[0-9a-f]{32}", fields["pair"]) and fields["pair"] == shown.token
    assert RatingDB(two_sources).next_pair("bob").token != shown.token  # per rater
    assert 'href="/results' not in html  # the live results are one address away, not a link
    assert client.get("/results").status_code == 200


def test_a_vote_without_the_sessions_csrf_token_is_refused_with_403(two_sources):
    client = TestClient(create_app(two_sources))
    form = {**_form(client.get("/", params={"rater": "alice"}).text), "choice": "left"}
    assert re.fullmatch(r"[0-9a-f]{32}", form["csrf"])
    assert client.cookies.get("rating_csrf") == form["csrf"]
    for forged in ({**form, "csrf": ""}, {**form, "csrf": "0" * 32}):
        answer = client.post("/vote", data=forged)
        assert answer.status_code == 403 and "CSRF token is missing or does not match" in (
            answer.text
        )
    # another site's page posting the form: the browser sends no cookie of this site
    # (SameSite=Strict), so even the right token alone is refused
    stranger = TestClient(create_app(two_sources))
    assert stranger.post("/vote", data=form).status_code == 403
    assert RatingDB(two_sources).votes() == []
    assert client.post("/vote", data=form, follow_redirects=False).status_code == 303
    assert len(RatingDB(two_sources).votes()) == 1


def test_raters_who_only_skipped_are_not_counted_as_raters(two_sources):
    client = TestClient(create_app(two_sources))
    _vote(client, "alice", "skip")
    assert RatingDB(two_sources).progress() == {"pairs": 4, "votes": 0, "raters": 0}
    _vote(client, "bob", "left")
    _vote(client, "alice", "skip")
    assert RatingDB(two_sources).progress("alice") == {
        "pairs": 4,
        "votes": 1,
        "raters": 1,
        "done": 2,
    }


def test_story_text_and_names_are_shown_as_text_never_as_markup(two_sources):
    client = TestClient(create_app(two_sources))
    page = client.get("/", params={"rater": "<i>eve</i>"}).text
    assert "<script>alert" not in page and "<b>bold</b>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp;" in page
    assert "&lt;i&gt;eve&lt;/i&gt;" in page and "<i>eve" not in page
    assert page.count("<script>") == 1  # the page's own key shortcuts, nothing else


def test_two_raters_at_once_store_every_vote_exactly_once(two_sources):
    # two raters, each on two threads (two tabs) racing through the same pairs
    def rate(rater):
        client = TestClient(create_app(two_sources))
        for _ in range(6):
            page = client.get("/", params={"rater": rater}).text
            if "All done" in page:
                return
            client.post("/vote", data={**_form(page), "choice": "tie"})

    threads = [threading.Thread(target=rate, args=(r,)) for r in ("ann", "ann", "ben", "ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    votes = RatingDB(two_sources).votes()
    assert sorted((v["rater"], v["pair"]) for v in votes) == sorted(
        (r, p) for r in ("ann", "ben") for p in range(1, 5)
    )


# -- the statistics, on votes with a known answer ------------------------------------------


def _wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [p, centre - half, centre + half]


# per two systems: the story indices the first wins, the second wins, tie (of 0..9)
KNOWN = {
    ("A", "B"): (range(8), [8], [9]),
    ("B", "C"): (range(7), [7, 8, 9], []),
    ("A", "C"): (range(9), [9], []),
}


@pytest.fixture
def known_votes(tmp_path):
    systems = {n: [RatedStory(n, 0, i, "P", f"{n}-{i}") for i in range(10)] for n in "ABC"}
    everything = [s for stories in systems.values() for s in stories]
    quality = {"A": 0.9, "B": 0.5, "C": 0.1}
    grades = {
        "good": {s: quality[s.system] for s in everything},
        "reversed": {s: 1 - quality[s.system] for s in everything},
        "flat": {s: 0.5 for s in everything},
        "half-failed": {s: None if s.system == "C" else quality[s.system] for s in everything},
    }
    db = RatingDB(tmp_path / "known.db")
    db.fill(["A", "B", "C"], systems, grades)
    while (pair := db.next_pair("r")) is not None:
        (left, li), (right, _) = (t["text"].split("-") for t in (pair.left, pair.right))
        first, second = sorted((left, right))
        wins_first, wins_second, _ = KNOWN[(first, second)]
        winner = first if int(li) in wins_first else second if int(li) in wins_second else None
        choice = "tie" if winner is None else "left" if winner == left else "right"
        db.vote("r", pair.id, pair.left["id"], choice)
    return db


def test_win_rates_come_out_as_the_known_answer(known_votes):
    rows = {(r["a"], r["b"]): r for r in results(known_votes, rounds=50)["win_rates"]}
    assert (rows["A", "B"]["a_wins"], rows["A", "B"]["b_wins"], rows["A", "B"]["ties"]) == (8, 1, 1)
    assert rows["A", "B"]["a_win_rate"] == pytest.approx(_wilson_by_hand(8, 9))
    assert rows["B", "C"]["a_win_rate"] == pytest.approx(_wilson_by_hand(7, 10))
    assert rows["A", "C"]["a_win_rate"] == pytest.approx(_wilson_by_hand(9, 10))
    assert wilson(0, 0) is None


def test_bradley_terry_orders_the_systems_with_intervals(known_votes):
    ratings = results(known_votes, rounds=200)["bradley_terry"]
    assert [r["system"] for r in ratings] == ["A", "B", "C"]
    for r in ratings:
        assert r["ci"][0] <= r["rating"] <= r["ci"][1]
    assert ratings[0]["ci"][0] > ratings[2]["ci"][1]  # A clearly above C


def test_bradley_terry_without_prior_is_the_maximum_likelihood_answer():
    # A beats B 3 times of 4: strength ratio 3, so 400 log10(3) rating points apart
    outcomes = [[0, 1, 1.0]] * 3 + [[1, 0, 1.0]]
    strength = fit_bradley_terry(__import__("numpy").array(outcomes), 2, prior=0.0)
    assert strength[0] / strength[1] == pytest.approx(3.0, rel=1e-6)


def _votes(*matches):
    """Votes as ``RatingDB.votes`` gives them: (left system, right system, choice, times)."""
    out = []
    for left, right, choice, times in matches:
        winner = {"left": left, "right": right}.get(choice)
        row = {"left_system": left, "right_system": right, "choice": choice, "winner": winner}
        out += [row] * times
    return out


def test_a_bootstrap_resample_without_a_systems_vote_is_dropped_not_pinned():
    # C has one vote of 31: about a third of the resamples hold none of C's
    votes = _votes(("A", "B", "left", 20), ("A", "B", "right", 10), ("C", "A", "left", 1))
    rows = {r["system"]: r for r in bradley_terry(votes, rounds=300)}
    kept = rows["C"]["resamples"]
    assert 100 < kept < 300 and all(r["resamples"] == kept for r in rows.values())
    for r in rows.values():
        assert r["ci"][0] <= r["rating"] <= r["ci"][1]
    res = {"database": "x.db", "progress": {"votes": 31, "raters": 1, "pairs": 31}}
    res |= {"skips": 0, "win_rates": [], "agreement": [], "bootstrap_rounds": 300}
    text = results_text({**res, "bradley_terry": list(rows.values())})
    assert f"({kept} resamples; {300 - kept} left a system without a vote)" in text
    # a system the direct fit cannot place is an error, never a made-up strength of 1
    with pytest.raises(ValueError, match=r"systems \[2\] have no vote"):
        fit_bradley_terry(__import__("numpy").array([[0, 1, 1.0]]), 3)


def test_a_system_with_only_skipped_pairs_gets_no_rating():
    votes = _votes(("A", "B", "left", 3), ("B", "A", "tie", 1), ("A", "C", "skip", 2))
    assert {r["system"] for r in bradley_terry(votes, rounds=20)} == {"A", "B"}


def test_a_fit_that_does_not_converge_says_so():
    np = __import__("numpy")
    outcomes = np.array([[0, 1, 1.0], [1, 2, 1.0], [0, 2, 0.5], [2, 1, 0.0]])
    assert fit_bradley_terry(outcomes, 3).shape == (3,)  # converges with the default limit
    with pytest.raises(ConvergenceError, match="did not converge in 2 iterations"):
        fit_bradley_terry(outcomes, 3, max_iter=2)
    with pytest.raises(ValueError, match="never won nor tied"):
        fit_bradley_terry(np.array([[0, 1, 1.0]]), 2, prior=0.0)


def test_each_graders_agreement_with_the_people(known_votes):
    rows = {r["grader"]: r for r in results(known_votes, rounds=10)["agreement"]}
    # decisive votes: 8+1, 7+3, 9+1 = 29; the better system won 8+7+9 = 24 of them
    assert (rows["good"]["agree"], rows["good"]["votes"]) == (24, 29)
    assert rows["good"]["agreement"] == pytest.approx(_wilson_by_hand(24, 29))
    assert (rows["reversed"]["agree"], rows["reversed"]["votes"]) == (5, 29)
    assert rows["flat"]["agreement"] is None and rows["flat"]["grader_ties"] == 29
    # it graded no story of C: only the 9 decisive votes of A against B count
    assert (rows["half-failed"]["votes"], rows["half-failed"]["not_graded"]) == (9, 20)


# -- the command ---------------------------------------------------------------------------


def test_results_print_as_text_and_json_and_votes_export(known_votes, tmp_path, capsys):
    assert main(["rate", "--results", str(known_votes.path)]) == 0
    text = capsys.readouterr().out
    assert "30 votes by 1 raters on 30 pairs" in text and "A over B: 0.889" in text
    assert main(["rate", "--results", str(known_votes.path), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bradley_terry"][0]["system"] == "A" and len(data["agreement"]) == 4
    jsonl, csv = tmp_path / "votes.jsonl", tmp_path / "votes.csv"
    assert main(["rate", "--results", str(known_votes.path), "--export", str(jsonl)]) == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 30 and {"pair", "rater", "left_system", "winner", "voted_at"} <= set(
        rows[0]
    )
    assert main(["rate", "--db", str(known_votes.path), "--export", str(csv)]) == 0
    lines = csv.read_text().splitlines()
    assert len(lines) == 31 and lines[0].startswith("vote,pair,rater,choice")


def test_the_results_page_shows_the_tables(known_votes):
    client = TestClient(create_app(known_votes))
    html = client.get("/results").text
    assert 'id="win-rates"' in html and "0.889" in html and 'id="agreement"' in html
    assert client.get("/results.json").json()["bradley_terry"][0]["system"] == "A"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{a}"], "two or more sources"),
        (["{a}", "{a}"], "given twice"),
        (["{a}", "{bad}"], "is not a `storytelling eval --json` summary"),
        (["{a}", "{other_seed}"], "share no story of the same seed"),
        (["{a}", "nowhere/run"], "is not a run folder"),
        (["--results", "{missing}"], "no rating database at"),
        (["{a}", "--json", "-"], "goes with --results"),
    ],
)
def test_bad_sources_fail_with_one_line_naming_them(tmp_path, capsys, argv, message):
    files = {
        "a": _eval_json(tmp_path / "a.json", "A"),
        "other_seed": _eval_json(tmp_path / "s.json", "S", seed=5),
        "bad": str(tmp_path / "bad.json"),
        "missing": str(tmp_path / "missing.db"),
    }
    (tmp_path / "bad.json").write_text('{"teacher": "heuristic"}')
    args = [a.format(**files) for a in argv]
    assert (
        main(["rate", *args, "--db", str(tmp_path / "r.db"), "--prepare-only", "--no-grade"]) == 2
    )
    assert message in capsys.readouterr().err


def test_one_file_or_folder_written_two_ways_is_one_source(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _eval_json(tmp_path / "a.json", "A")
    _eval_json(tmp_path / "b.json", "B")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")  # a run folder and its checkpoint
    db = ["--db", "r.db", "--prepare-only", "--no-grade"]
    for first, second in (("a.json", "./a.json"), ("run", "run/"), ("run", "run/checkpoint.zip")):
        assert main(["rate", first, second, "b.json", *db]) == 2
        err = capsys.readouterr().err
        assert f"sources {first!r} and {second!r} are the same source" in err
        assert "UNIQUE" not in err and "cannot be used" not in err
    # one name per source, whichever way it was written: its full path
    assert main(["rate", "a.json", "./b.json", *db]) == 0
    full = [str((tmp_path / n).resolve()) for n in ("a.json", "b.json")]
    assert RatingDB("r.db").sources() == full
    assert {s["system"] for s in _stories("r.db")} == set(full)
    assert main(["rate", "./a.json", full[1], *db]) == 0  # the same sources: carry on


def test_database_errors_are_reported_as_what_they_are(tmp_path):
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"these are not the votes you are looking for" * 100)
    with pytest.raises(ConfigError, match="cannot be used .*file is not a database"):
        RatingDB(garbage)
    db = RatingDB(tmp_path / "r.db")
    row = "INSERT INTO stories (system, seed, idx, prompt, text) VALUES ('s', 0, 0, 'p', 't')"
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
        conn.execute(row)
        conn.execute(row)  # a broken invariant is not the file's fault: shown as it is
    twice = [RatedStory("A", 0, 0, "P", "a"), RatedStory("A", 0, 0, "P", "again")]
    with pytest.raises(ConfigError, match="a seed and index of its own"):
        db.fill(["A", "B"], {"A": twice, "B": [RatedStory("B", 0, 0, "P", "b")]}, {})


def test_help_says_what_the_command_does_and_sources_do_not_go_with_results(
    known_votes, tmp_path, capsys
):
    with pytest.raises(SystemExit) as done:
        main(["rate", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "until Ctrl-C stops it" in text
    for flag in ("--stories", "--seed", "--num-envs"):
        assert re.search(rf"{flag} [A-Z_]+ [^-]*\(only when filling a new --db", text), flag
    other = _eval_json(tmp_path / "c.json", "C")
    assert main(["rate", other, "--results", str(known_votes.path)]) == 2
    assert "takes no sources (got " in capsys.readouterr().err


def test_a_database_is_tied_to_its_sources(two_sources, tmp_path, capsys):
    other = _eval_json(tmp_path / "c.json", "C")
    assert (
        main(["rate", other, str(tmp_path / "a.json"), "--db", str(two_sources), "--prepare-only"])
        == 2
    )
    assert "give the same sources, none" in capsys.readouterr().err
    assert main(["rate", "--db", str(two_sources), "--prepare-only"]) == 0  # carry on
    assert main(["rate", "--results", str(two_sources), "--export", str(tmp_path / "v.txt")]) == 2
    assert "name a .jsonl or .csv file" in capsys.readouterr().err


def test_a_student_writes_its_stories_and_the_graders_grade_them(student, tmp_path, monkeypatch):
    from story_env.run import evaluation

    calls, real = [], evaluation.evaluate

    def spy_evaluate(**kwargs):  # the real evaluation, its arguments noted
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(evaluation, "evaluate", spy_evaluate)
    before = _eval_json(tmp_path / "before.json", "B", n=4)
    db = tmp_path / "r.db"
    args = ["rate", f"student:{student}", before, "--db", str(db), "--stories", "4"]
    assert main([*args, "--num-envs", "2", "--prepare-only", "--grader", "heuristic"]) == 0
    store = RatingDB(db)
    assert store.progress()["pairs"] == 4
    grades = store.grades()["heuristic"]
    assert len(grades) == 8 and all(g is None or 0.0 <= g <= 1.0 for g in grades.values())
    # MAUVE (SmolLM2, the mauve extra) would be thrown away: the stories are written without
    assert [c["mauve"] for c in calls] == [False]
    assert store.sources()[0] == f"student:{student}"


_RACER = """
import sys
from story_env.run.rating import RatingDB
db = RatingDB(sys.argv[1])
stored = 0
for rater in sys.argv[2:]:
    while (pair := db.next_pair(rater)) is not None:
        stored += db.vote(rater, pair.id, pair.left["id"], "left")
print(stored)
"""


@pytest.mark.slow
def test_two_processes_racing_through_the_same_pairs_store_each_vote_once(tmp_path):
    import subprocess
    import sys

    systems = {n: [RatedStory(n, 0, i, "P", f"{n} {i}") for i in range(40)] for n in "AB"}
    db = RatingDB(tmp_path / "race.db")
    db.fill(["A", "B"], systems, {})
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(db.path), *raters],
            stdout=subprocess.PIPE,
            text=True,
        )
        for raters in (["ann", "ben"], ["ben", "ann"])
    ]
    stored = [int(p.communicate(timeout=300)[0]) for p in racers]
    votes = db.votes()
    assert sum(stored) == len(votes) == 80  # each process counts only the votes it stored
    assert len({(v["rater"], v["pair"]) for v in votes}) == 80


def test_an_eval_file_names_its_teacher_and_judges_as_graders(tmp_path):
    from story_env.run.rating import load_source

    path = tmp_path / "e.json"
    judged = {"lm:gemma": {"judge": {"name": "lm", "kwargs": {"model": "gemma"}}}}
    path.write_text(json.dumps({"seed": 3, "teacher": "lm", "texts": ["x", "y"], "judges": judged}))
    stories, graders = load_source(str(path), stories=9, seed=0, num_envs=1, prompt="Once,")
    assert [g.label for g in graders] == ["lm", "lm:gemma"]
    assert [(s.seed, s.index, s.prompt, s.text) for s in stories] == [
        (3, 0, "Once,", "x"),
        (3, 1, "Once,", "y"),
    ]


@pytest.mark.slow
def test_a_trained_run_and_a_real_eval_file_are_rated_side_by_side(student, tmp_path, capsys):
    from story_env.run.config import TrainConfig
    from story_env.run.training import train

    run = tmp_path / "run"
    config = TrainConfig(student=student, steps=128, num_envs=4, max_new_tokens=20)
    train(config, run, progress=False)
    before = str(tmp_path / "before.json")
    eval_args = ["eval", "--student", student, "--stories", "8", "--num-envs", "4"]
    assert main([*eval_args, "--max-new-tokens", "20", "--no-judge", "--json", before]) == 0
    db = tmp_path / "r.db"
    args = ["rate", str(run), before, "--db", str(db), "--stories", "8", "--num-envs", "4"]
    assert main([*args, "--prepare-only", "--grader", "heuristic"]) == 0
    assert "8 pairs of 2 sources, graded by heuristic" in capsys.readouterr().out
    written = {s["system"] for s in _stories(db)}
    assert written == {str(run.resolve()), str(Path(before).resolve())}


def _stories(db):
    with RatingDB(db).connect() as conn:
        return [dict(r) for r in conn.execute("SELECT system, text FROM stories")]
