"""`storytelling rate`: the blind pairwise rating page, its votes and what they say."""

from __future__ import annotations

import json
import math
import re
import threading

import pytest
from starlette.testclient import TestClient

from story_env.prompts import PAPER_PROMPT
from story_env.run.cli import main
from story_env.run.rating import RatedStory, RatingDB
from story_env.run.rating_stats import fit_bradley_terry, results, wilson
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


def _shown(html):
    """(pair id, left story id) of the pair a page shows."""
    pair = re.search(r'name="pair" value="(\d+)"', html)
    left = re.search(r'name="left" value="(\d+)"', html)
    assert pair and left, html
    return int(pair.group(1)), int(left.group(1))


def _vote(client, rater, choice):
    page = client.get("/", params={"rater": rater})
    pair, left = _shown(page.text)
    answer = client.post(
        "/vote",
        data={"rater": rater, "pair": pair, "left": left, "choice": choice},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    return pair, left


def test_a_vote_is_stored_with_its_pair_sides_rater_and_time(two_sources):
    client = TestClient(create_app(two_sources))
    assert 'name="rater"' in client.get("/").text  # no name yet: the name form
    pair, left = _vote(client, "alice", "left")
    (vote,) = RatingDB(two_sources).votes()
    assert (vote["pair"], vote["rater"], vote["choice"], vote["left_story"]) == (
        pair,
        "alice",
        "left",
        left,
    )
    assert {vote["left_system"], vote["right_system"]} == {
        str(two_sources.parent / "a.json"),
        str(two_sources.parent / "b.json"),
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
    answered = {_vote(first, "alice", "left")[0], _vote(first, "alice", "skip")[0]}
    again = TestClient(create_app(two_sources))  # a new server over the same file
    page = again.get("/", params={"rater": "alice"}).text
    assert "pair 3 of 4" in page and _shown(page)[0] not in answered
    answered |= {_vote(again, "alice", "tie")[0], _vote(again, "alice", "right")[0]}
    assert len(answered) == 4
    assert "All done" in again.get("/", params={"rater": "alice"}).text
    # another rater still sees every pair; the cookie brings a returning rater back
    assert "pair 1 of 4" in again.get("/", params={"rater": "bob"}).text
    assert again.get("/", follow_redirects=False).headers["location"] == "/?rater=bob"


def test_a_repeated_submit_stores_one_vote(two_sources):
    client = TestClient(create_app(two_sources))
    page = client.get("/", params={"rater": "alice"}).text
    pair, left = _shown(page)
    form = {"rater": "alice", "pair": pair, "left": left, "choice": "left"}
    for choice in ("left", "right"):  # a double click, then a changed mind: the first counts
        client.post("/vote", data={**form, "choice": choice})
    votes = RatingDB(two_sources).votes()
    assert [(v["pair"], v["choice"]) for v in votes] == [(pair, "left")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"choice": "best"}, "is not one of left, right, tie, skip"),
        ({"pair": "999"}, "no pair 999"),
        ({"left": "-1"}, "is not the one shown on the left"),
        ({"rater": " "}, "give a rater name"),
        ({"pair": "x"}, "invalid literal"),
    ],
)
def test_a_bad_vote_is_refused_with_the_reason(two_sources, change, message):
    client = TestClient(create_app(two_sources))
    pair, left = _shown(client.get("/", params={"rater": "alice"}).text)
    form = {"rater": "alice", "pair": pair, "left": left, "choice": "left", **change}
    answer = client.post("/vote", data=form)
    assert answer.status_code == 400 and message in answer.text
    assert RatingDB(two_sources).votes() == []


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
            pair, left = _shown(page)
            client.post("/vote", data={"rater": rater, "pair": pair, "left": left, "choice": "tie"})

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


def test_a_student_writes_its_stories_and_the_graders_grade_them(student, tmp_path):
    before = _eval_json(tmp_path / "before.json", "B", n=4)
    db = tmp_path / "r.db"
    args = ["rate", f"student:{student}", before, "--db", str(db), "--stories", "4"]
    assert main([*args, "--num-envs", "2", "--prepare-only", "--grader", "heuristic"]) == 0
    store = RatingDB(db)
    assert store.progress()["pairs"] == 4
    grades = store.grades()["heuristic"]
    assert len(grades) == 8 and all(g is None or 0.0 <= g <= 1.0 for g in grades.values())


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
    assert written == {str(run), before}


def _stories(db):
    with RatingDB(db).connect() as conn:
        return [dict(r) for r in conn.execute("SELECT system, text FROM stories")]
