"""Notices on the way out: words, message bytes, SMTP.

- ``notifiers.timefmt``: times and durations in the reader's zone and locale (pure functions);
- ``notifiers.render``: ``render(NoticeContent) -> RenderedNotice(subject, text, html)``;
- ``notifiers.message``: ``build_message(...) -> bytes`` (multipart/alternative, CRLF);
- ``notifiers.smtp``: ``SmtpPool`` (pooled SMTP, one attempt per send), the ``Mailer`` interface and
  the ``MemoryMailer`` fake;
- ``notifiers.notice``: one notice job composed into bytes. (The local mail capture of
  ``outage dev`` is a development tool: ``devtools.capture``.)

Nothing is imported here, so importing one module does not pull in the others.
"""
