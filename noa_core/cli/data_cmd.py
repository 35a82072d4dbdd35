"""``noa data pull SRC DST`` and ``noa data push SRC DST``: verified transfers by MANIFEST.json."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from noa_core.cli.args import add_progress, positive

if TYPE_CHECKING:  # boto3 loads slowly: the modules that need it are imported per command
    from noa_core.data.s3_client import S3Settings
    from noa_core.data.storage import TransferReport

_MiB = 1 << 20


def _settings(a: argparse.Namespace) -> S3Settings:
    from noa_core.data.s3_client import S3Settings

    return S3Settings.from_env(endpoint_url=a.endpoint_url, region=a.region,
                               addressing_style=a.addressing_style,
                               checksum_policy=a.checksum_policy,
                               max_concurrency=a.concurrency)


def _summary(verb: str, report: TransferReport) -> str:
    rate = report.bytes_transferred / _MiB / report.seconds if report.seconds > 0 else 0.0
    return (f"{verb} {report.files} file(s), {report.bytes_total / _MiB:.1f} MiB, "
            f"{report.source} → {report.destination}: {report.files_transferred} transferred "
            f"({report.files_resumed} resumed), {report.files_skipped} already present and "
            f"verified; {report.bytes_transferred / _MiB:.1f} MiB moved in "
            f"{report.seconds:.1f} s ({rate:.0f} MiB/s)")


def _cmd_pull(a: argparse.Namespace) -> int:
    from noa_core.data.storage import pull

    print(_summary("pulled", pull(a.src, a.dst, settings=_settings(a), progress=a.progress)))
    return 0


def _cmd_push(a: argparse.Namespace) -> int:
    from noa_core.data.storage import push

    print(_summary("pushed", push(a.src, a.dst, settings=_settings(a), progress=a.progress)))
    return 0


def _add_s3_options(p: argparse.ArgumentParser) -> None:
    from noa_core.data.s3_client import ADDRESSING_STYLE_ENV, ADDRESSING_STYLES, CHECKSUM_POLICIES

    g = p.add_argument_group(
        "S3", "Credentials come only from boto3's standard chain; these override boto3's own "
              "environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_REQUEST_CHECKSUM_CALCULATION).")
    g.add_argument("--endpoint-url", default=None, metavar="URL",
                   help="S3 endpoint (MinIO, Ceph, ...); default: boto3's resolution")
    g.add_argument("--region", default=None, help="region name; default: boto3's resolution")
    g.add_argument("--addressing-style", choices=ADDRESSING_STYLES, default=None,
                   help=f"bucket addressing (default: ${ADDRESSING_STYLE_ENV} or auto)")
    g.add_argument("--checksum-policy", choices=CHECKSUM_POLICIES, default=None,
                   help="when boto3 computes and validates CRC checksums; when_required suits "
                        "S3-compatible stores that reject boto3 ≥ 1.36's default")
    g.add_argument("--concurrency", type=positive, default=None,
                   help="parallel byte ranges / parts per file (default 8)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="pull or push a directory, verified by MANIFEST.json",
                       description="Move a directory between s3://bucket/prefix and local "
                                   "paths; every file is checked against MANIFEST.json "
                                   "(size and SHA-256 per file).")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")

    pl = dsub.add_parser(
        "pull", help="fetch SRC (s3:// or local) into the local DST, verifying every file",
        description="Read SRC/MANIFEST.json, refuse any path that would land outside DST, "
                    "fetch each file under a temporary name, verify size and SHA-256 and rename "
                    "it into place. Files already present and verified are skipped; an "
                    "interrupted S3 download resumes by byte range while the object is "
                    "unchanged. DST/MANIFEST.json is written when every file is verified.")
    pl.add_argument("src", metavar="SRC", help="s3://bucket/prefix or a local directory")
    pl.add_argument("dst", metavar="DST", help="local directory")
    _add_s3_options(pl)
    add_progress(pl)
    pl.set_defaults(func=_cmd_pull)

    ps = dsub.add_parser(
        "push", help="publish the local directory SRC at DST (s3:// or local) with a manifest",
        description="Hash every file of SRC, upload or copy it (multipart above the threshold), "
                    "and write DST/MANIFEST.json last. Objects already at DST with the same "
                    "SHA-256 are not sent again. A manifest already in SRC must still match "
                    "SRC's files.")
    ps.add_argument("src", metavar="SRC", help="local directory")
    ps.add_argument("dst", metavar="DST", help="s3://bucket/prefix or a local directory")
    _add_s3_options(ps)
    add_progress(ps)
    ps.set_defaults(func=_cmd_push)
