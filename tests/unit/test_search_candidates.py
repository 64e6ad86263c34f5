"""The filter-only search's candidates (db/queries/search.py): the rows read first
cover FEW_CANDIDATES messages however many files or emoji each holds."""

from xfchat.db.queries.search import CANDIDATE_ROWS, FEW_CANDIDATES
from xfchat.domain.attachments import MAX_FILES
from xfchat.domain.messages import MAX_REACTION_EMOJI


def test_the_rows_read_first_hold_every_candidate_message() -> None:
    assert CANDIDATE_ROWS >= FEW_CANDIDATES * max(MAX_FILES, MAX_REACTION_EMOJI)
