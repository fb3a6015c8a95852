"""Snapshots: declarative specs, content-addressed immutable versions, contamination guard, exports.

- spec.py: what a snapshot selects (`SnapshotSpec`, from flags or a JSON/YAML file);
- create.py: `create_snapshot(session, name, spec) -> (Snapshot, created)`, `resolve_snapshot`;
- hashing.py: the canonical serialisation the snapshot hash covers;
- contamination.py: evaluation questions kept out of training snapshots, the 8-gram report;
- manifest.py: what a snapshot's manifest records; `diff_snapshots`;
- export.py: `export_snapshot(session, ref, fmt, out_dir, ...) -> ExportManifest`.
"""
