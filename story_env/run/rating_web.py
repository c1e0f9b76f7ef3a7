"""``storytelling rate``: the blind pairwise rating page and its command.

A Starlette app over a rating database (``story_env.run.rating``): ``/`` asks for a
rater name, then shows that rater one pair at a time (sides and order drawn per rater,
system names hidden) until every pair is answered; ``/vote`` stores an answer (the form
names the pair by an opaque token and carries the session's CSRF token, checked against
its cookie);
``/results`` and ``/results.json`` show what the votes say
(``story_env.run.rating_stats``). Pages are Jinja2 templates with autoescape on: a story
is model output and always shows as text.
"""

from __future__ import annotations

import argparse
import hmac
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from story_env.errors import ConfigError, DependencyMissingError
from story_env.run.rating import MAX_RATER, RatingDB, check_rater

_INSTALL = 'pip install "storytelling[rate]"'
#: The cookie holding a browser session's CSRF token (the vote form carries it too).
CSRF_COOKIE = "rating_csrf"


def _templates() -> Any:
    try:
        import jinja2
    except ImportError as exc:
        raise DependencyMissingError(f"the rating page needs jinja2; {_INSTALL}") from exc
    loader = jinja2.FileSystemLoader(Path(__file__).parent / "templates")
    return jinja2.Environment(loader=loader, autoescape=True)


def create_app(db: RatingDB | str | Path) -> Any:
    """The rating page's Starlette app over the database ``db``."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
        from starlette.routing import Route
    except ImportError as exc:
        raise DependencyMissingError(f"the rating page needs starlette; {_INSTALL}") from exc
    from story_env.run.rating_stats import results

    store = db if isinstance(db, RatingDB) else RatingDB(db)
    template = _templates().get_template("rating.html")

    def page(status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(template.render(max_rater=MAX_RATER, **context), status_code=status)

    def home_page(rater: str | None, csrf: str) -> HTMLResponse:
        if not rater:
            return page(page="name", rater="")
        try:
            rater = check_rater(rater)
        except ConfigError as exc:
            return page(400, page="error", message=str(exc))
        progress = store.progress(rater)
        pair = store.next_pair(rater)
        response = page(
            page="pair" if pair else "done", rater=rater, pair=pair, progress=progress, csrf=csrf
        )
        response.set_cookie("rater", quote(rater), samesite="strict", httponly=True)
        return response

    async def home(request: Request) -> Response:
        rater = request.query_params.get("rater")
        if request.query_params.get("change"):
            return page(page="name", rater="")
        if rater is None and request.cookies.get("rater"):
            target = "/?rater=" + request.cookies["rater"]  # kept quoted, as it was set
            return RedirectResponse(target, status_code=303)
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if not re.fullmatch(r"[0-9a-f]{32}", csrf):
            csrf = secrets.token_hex(16)  # a new browser session
        response = await run_in_threadpool(home_page, rater, csrf)
        response.set_cookie(CSRF_COOKIE, csrf, samesite="strict", httponly=True)
        return response

    def store_vote(form: dict[str, list[str]]) -> Response:
        field = {k: v[0] for k, v in form.items() if v}
        try:
            rater = check_rater(field.get("rater"))
            store.vote_token(rater, field.get("pair", ""), field.get("choice", ""))
        except ValueError as exc:  # ConfigError is a ValueError
            return page(400, page="error", message=str(exc))
        return RedirectResponse("/?rater=" + quote(rater), status_code=303)

    async def vote(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        sent = (form.get("csrf") or [""])[0].encode("utf-8")
        expected = request.cookies.get(CSRF_COOKIE, "").encode("utf-8")
        if not expected or not hmac.compare_digest(sent, expected):
            return page(
                403,
                page="error",
                message="this answer did not come from the rating page of this browser (its "
                "CSRF token is missing or does not match the session's cookie); open the "
                "rating page again and answer there",
            )
        return await run_in_threadpool(store_vote, form)

    async def results_page(request: Request) -> Response:
        res = await run_in_threadpool(results, store)
        return page(page="results", res=res)

    async def results_json(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(results, store))

    routes = [
        Route("/", home),
        Route("/vote", vote, methods=["POST"]),
        Route("/results", results_page),
        Route("/results.json", results_json),
    ]
    return Starlette(routes=routes)


def prepare(db: RatingDB, args: argparse.Namespace) -> None:
    """Fill an empty database from ``args.sources``; check a filled one names the same.

    Each source is named by ``source_name`` (files and folders by their absolute path), so
    one file written two ways is refused as a duplicate, not rated against itself.
    """
    from story_env.run.judging import parse_judge
    from story_env.run.rating import check_distinct, grade_stories, load_source

    given = list(args.sources)
    sources = check_distinct(given)
    stored = db.sources()
    if stored is not None:
        if given and stored not in (sources, given):  # as given: a database from before
            raise ConfigError(
                f"{str(db.path)!r} holds the pairs of {stored}, not of {sources}; give the "
                "same sources, none (to carry on rating), or a new --db"
            )
        return
    if len(sources) < 2:
        raise ConfigError(
            f"{str(db.path)!r} holds no pairs yet: give two or more sources (run folders, "
            "checkpoints, eval .json files or student:NAME), e.g. "
            "`storytelling rate runs/demo before.json`"
        )
    systems, named = {}, {}
    for name, source in zip(sources, given, strict=True):
        systems[name], graders = load_source(
            source, stories=args.stories, seed=args.seed, num_envs=args.num_envs, prompt=args.prompt
        )
        named.update((g.label, g) for g in graders)
    if args.no_grade:
        chosen = []
    elif args.grader:
        chosen = [parse_judge(g) for g in args.grader]
    else:
        chosen = list(named.values())
    pairs = db.fill(sources, systems, grade_stories(systems, chosen))
    print(
        f"{db.path}: {pairs} pairs of {len(sources)} sources, graded by "
        f"{', '.join(g.label for g in chosen) or 'no grader'}"
    )


def cmd_rate(args: argparse.Namespace) -> int:
    from story_env.run.commands import _json_out
    from story_env.run.rating import export_votes
    from story_env.run.rating_stats import results, results_text

    if args.results and args.sources:
        raise ConfigError(
            f"--results {args.results} reads a filled database and takes no sources (got "
            f"{' '.join(args.sources)}); drop them, or fill a database with "
            "`storytelling rate SOURCES --db FILE` first"
        )
    if args.json and not args.results:
        raise ConfigError(
            f"--json {args.json} goes with --results DB; e.g. --results ratings.db --json -"
        )
    path = Path(args.results or args.db)
    if (args.results or not args.sources) and not path.is_file():
        raise ConfigError(f"no rating database at {str(path)!r}; check the path")
    db = RatingDB(path)
    if not args.results:
        prepare(db, args)
    if args.export:
        print(f"wrote {export_votes(db, args.export)} votes to {args.export}")
    if args.results:
        res = results(db)
        if not _json_out(args, res):
            print(results_text(res))
        return 0
    if args.export or args.prepare_only:
        return 0
    return serve(db, args.host, args.port)


def serve(db: RatingDB, host: str, port: int) -> int:
    """Serve the rating page until Ctrl-C."""
    try:
        import uvicorn
    except ImportError as exc:
        raise DependencyMissingError(f"the rating page needs uvicorn; {_INSTALL}") from exc
    progress = db.progress()
    print(
        f"rating page on http://{host}:{port}/ ({progress['pairs']} pairs, "
        f"{progress['votes']} votes so far); results on /results. Ctrl-C stops it"
    )
    uvicorn.run(create_app(db), host=host, port=port, log_level="warning")
    return 0


def _port(text: str) -> int:
    """A TCP port number for ``--port``."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"port must be a whole number from 1 to 65535, got {text!r}"
        )
    return port


def add_rate(p: argparse.ArgumentParser) -> None:
    from story_env.arguments import positive_int, seed
    from story_env.prompts import PAPER_PROMPT
    from story_env.run.commands import _JSON_HELP

    p.description = (
        "Blind pairwise rating of stories by people in a web page; win rates, ratings. "
        "With two or more sources and a new "
        "--db, write and grade their stories and fill the database with their pairs; then "
        "serve the rating page (http://HOST:PORT/, results on /results) until Ctrl-C "
        "stops it. Without sources, carry on rating the pairs --db holds. --results DB "
        "prints what the votes say and exits."
    )
    fill = " (only when filling a new --db; ignored after)"
    p.add_argument(
        "sources",
        nargs="*",
        help="two or more run folders, checkpoints, `storytelling eval --json` files or "
        "student:NAME; omit them to carry on rating the pairs --db holds",
    )
    p.add_argument("--db", default="ratings.db", help="the rating database (default: ratings.db)")
    p.add_argument(
        "--results",
        metavar="DB",
        help="print what the votes in DB say, then exit (takes no sources)",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="with --results: " + _JSON_HELP,
    )
    p.add_argument("--export", metavar="FILE", help="write every vote to FILE (.jsonl or .csv)")
    p.add_argument(
        "--stories",
        type=positive_int,
        default=16,
        help=f"stories each run or student writes (default: 16){fill}",
    )
    p.add_argument(
        "--seed", type=seed, default=0, help=f"seed the stories are written at (default: 0){fill}"
    )
    p.add_argument(
        "--num-envs",
        type=positive_int,
        default=16,
        help=f"stories written at once (default: 16){fill}",
    )
    p.add_argument(
        "--prompt",
        default=PAPER_PROMPT,
        help="the prompt the stories of eval .json files continue (the file does not "
        f"record it; default: the paper's, which `storytelling eval` writes from){fill}",
    )
    p.add_argument(
        "--grader",
        action="append",
        metavar="NAME[:MODEL|:JSON]",
        help="a teacher that grades every story, to compare with the people "
        f"(repeatable; default: the teachers and judges the sources name){fill}",
    )
    p.add_argument("--no-grade", action="store_true", help=f"no automatic grades{fill}")
    p.add_argument(
        "--prepare-only", action="store_true", help="fill --db, then exit (serve no page)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    p.set_defaults(func=cmd_rate)
