from setuptools import find_packages, setup

# Ranges here; exact pins for reproducible installs live in constraints.txt.
setup(
    name="nasa_assets",
    version="0.1.0",
    description="An ML-ready image dataset from the NASA Image and Video Library, built with Dagster.",
    packages=find_packages(exclude=["nasa_assets_tests*"]),
    python_requires=">=3.11,<3.14",
    install_requires=[
        "dagster>=1.13.27,<1.14",
        "dagster-webserver>=1.13.27,<1.14",
        "dagster-aws>=0.29.27,<0.30",
        "requests>=2.32,<3",
        "pandas>=3.0,<4",
        "pyarrow>=26,<27",
        "pillow>=12,<14",
        "python-dotenv>=1.0,<2",
        "imagehash>=4.3.2,<5",
        # The datasets file (NASA_DATASETS_FILE); Dagster depends on it too.
        "pyyaml>=6.0,<7",
    ],
    extras_require={
        "postgres": ["dagster-postgres>=0.29.27,<0.30"],
        # nasa_assets.dataset.hf.load_hf_dataset; used offline, never talks to the Hub.
        "hf": ["datasets>=5.2,<6"],
        "test": [
            "pytest>=9,<10",
            # make test-quick runs the unit and integration tiers on two workers.
            "pytest-xdist>=3.8,<4",
            "hypothesis>=6.100,<7",
            "import-linter>=2.17,<3",
            "moto[server]>=5.2,<5.3",
            "dagster-graphql>=1.13.27,<1.14",
            "dagster-postgres>=0.29.27,<0.30",
            "playwright>=1.65,<1.66",
            "webdataset>=1.0.2,<1.1",
            "datasets>=5.2,<6",
        ],
    },
)
