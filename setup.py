"""Installation of sct_lesion_classify.

Inference needs only numpy, scipy, nibabel and onnxruntime (plus jsonschema and tqdm), so the
plugin installs into SCT's own environment (Python 3.10, numpy < 2, onnxruntime < 1.22).
Training needs the ``train`` extra; install it with ``-c constraints.txt`` so that torch stays at
the CPU build 2.13.0 instead of pulling CUDA packages.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "sct_lesion_classify" / "__init__.py").read_text()).group(1)

setup(
    name="sct_lesion_classify",
    version=VERSION,
    description="Intramedullary spinal cord lesion segmentation and differential diagnosis "
                "(astrocytoma, ependymoma, MS, NMOSD): a Spinal Cord Toolbox plugin",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["sct_lesion_classify", "sct_lesion_classify.*"]),
    package_data={"sct_lesion_classify": ["**/*.json", "**/*.html", "**/*.css"]},
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.9",
        "nibabel>=5.0",
        "onnxruntime>=1.16",
        "onnx>=1.16",  # runtime.graph_rewrite: resolves the exporter's CastLike before ONNX Runtime optimizes
        "jsonschema>=4.17",
        "tqdm>=4.64",
    ],
    extras_require={
        "train": ["torch>=2.2", "monai>=1.3", "onnx>=1.16", "onnxscript>=0.2", "matplotlib>=3.6"],
        "distributed": ["dask[distributed]>=2024.1"],
        "test": ["pytest>=7", "hypothesis>=6.80", "onnx>=1.16"],
    },
    entry_points={
        "console_scripts": [
            "sct_lesion_classify = sct_lesion_classify.cli.sct_lesion_classify:console_entry",
            "sct_deepseg_imlesion = sct_lesion_classify.cli.deepseg_imlesion:console_entry",
            "sct_classify_lesion = sct_lesion_classify.cli.classify_lesion:console_entry",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
