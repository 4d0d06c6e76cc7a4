"""Every contact's choice, read by every worker: what the preferences page and the ops API show.

A ``TopicView`` (``streams/topic_view.py``) of the preferences topic, which is kept whole
(``retention.ms=-1``, ``streams/topics.py`` ``RETAINED``): its requests, folded in offset order by
``domain.preferences.PreferenceBook`` exactly as the agent folds them into the ledger entries
(``streams/preferences.py``), give each customer's ``receive``/``unsubscribed`` parts on any
worker. Reads are eventually consistent; ``sync`` waits until what the topic holds now has been
read (the ops API reads after it).
"""

from __future__ import annotations

from domain.preferences import PreferenceBook
from streams import topics as T
from streams.topic_view import BookView


class PreferencesView(BookView):
    label = "preferences view"
    default_client_id = "outage-preferences-view"
    source = T.PREFERENCES
    book_type = PreferenceBook
    skipped_what = "records that are not requests"
