"""Manifest lines lose the (manifest, dedupe) index.

It served only the check "was this use reported by an earlier chunk", and kept a random-order B-tree up to date
for every outcome row (about a third of the time spent writing them). The SQL engine keeps the dedupe keys it has
seen in a session-local table instead (``compensation/usage_sql.py``), rebuilt from the outcome rows on resume.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('compensation', '0007_exports'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='manifestline',
            name='manifest_line_dedupe_idx',
        ),
    ]
