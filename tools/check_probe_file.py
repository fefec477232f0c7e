"""Check a translated probe file against the English master (profiles/probes/en.yaml).

Usage: python tools/check_probe_file.py profiles/probes/ro.yaml
"""
import sys
from pathlib import Path

import yaml

root = Path(__file__).resolve().parents[1]
en = yaml.safe_load((root / "profiles/probes/en.yaml").read_text(encoding="utf-8"))
en_ids = [p["id"] for p in en["probes"]]
errors = []
for path in sys.argv[1:]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    lang = Path(path).stem
    if doc.get("language") != lang:
        errors.append(f"{path}: language must be {lang!r}")
    ids = [p.get("id") for p in doc.get("probes", [])]
    if ids != en_ids:
        missing = sorted(set(en_ids) - set(ids))
        extra = sorted(set(ids) - set(en_ids))
        errors.append(f"{path}: ids differ from en.yaml (missing {missing}, extra {extra}, or order differs)")
    for p in doc.get("probes", []):
        t, opts = p.get("template", ""), p.get("options", [])
        if not isinstance(t, str) or t.count("_") != 1:
            errors.append(f"{path} {p.get('id')}: template needs exactly one '_' blank")
        if len(opts) != 2 or not all(isinstance(o, str) and o.strip() for o in opts) or opts[0] == opts[1]:
            errors.append(f"{path} {p.get('id')}: needs two different, non-empty options")
        if set(p) - {"id", "template", "options"}:
            errors.append(f"{path} {p.get('id')}: unexpected keys {sorted(set(p) - {'id', 'template', 'options'})}")
print("\n".join(errors) or f"OK: {len(sys.argv) - 1} file(s)")
sys.exit(1 if errors else 0)
