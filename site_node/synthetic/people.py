"""Synthetic people: names, addresses, phone numbers and identifiers of patients and staff.

All values are invented from fixed lists and the seeded random generator; none belongs to a
real person. They are deliberately realistic (and at least four characters long) so that
de-identification tests can scan output bytes for them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from site_node.synthetic.styles import SiteStyle

FAMILY_NAMES = (
    "Abernathy",
    "Brennan",
    "Castellano",
    "Delacroix",
    "Eastwood",
    "Fairbanks",
    "Gallagher",
    "Hawthorne",
    "Ingersoll",
    "Jablonski",
    "Kowalczyk",
    "Lindqvist",
    "Macintyre",
    "Nakamura",
    "Okonkwo",
    "Pemberton",
    "Quintero",
    "Rasmussen",
    "Sandoval",
    "Thornbury",
    "Underwood",
    "Valentini",
    "Whitfield",
    "Yamamoto",
    "Zimmerman",
    "Ashworth",
    "Blackwood",
    "Carmichael",
    "Donnelly",
    "Ellsworth",
    "Fitzgerald",
    "Gunderson",
    "Holloway",
    "Iverson",
    "Jaramillo",
    "Kensington",
    "Lockhart",
    "Montgomery",
    "Northcott",
    "Oyelaran",
    "Prescott",
    "Radcliffe",
    "Stanhope",
    "Templeton",
    "Vasquez",
    "Wainwright",
    "Albrecht",
    "Bergstrom",
)
GIVEN_FEMALE = (
    "Margaret",
    "Eleanor",
    "Beatrice",
    "Harriet",
    "Josephine",
    "Rosalind",
    "Gwendolyn",
    "Priscilla",
    "Theodora",
    "Winifred",
    "Adelaide",
    "Cordelia",
    "Florence",
    "Isadora",
    "Lucinda",
    "Marianne",
)
GIVEN_MALE = (
    "Bartholomew",
    "Cornelius",
    "Desmond",
    "Fitzwilliam",
    "Gideon",
    "Horatio",
    "Ignatius",
    "Jeremiah",
    "Leopold",
    "Montgomery",
    "Nathaniel",
    "Oswald",
    "Percival",
    "Reginald",
    "Sebastian",
    "Thaddeus",
)
STREETS = (
    "Maple Avenue",
    "Chestnut Street",
    "Willow Lane",
    "Juniper Court",
    "Sycamore Drive",
    "Magnolia Way",
    "Hawthorn Road",
    "Bramble Close",
    "Larkspur Terrace",
    "Foxglove Crescent",
    "Ironwood Place",
)
PHYSICIAN_FAMILY = (
    "Oduya",
    "Hargreave",
    "Finchley",
    "Castellanos",
    "Wexford",
    "Lindgren",
    "Marchetti",
    "Bhattacharya",
    "Sorensen",
    "Kingsley",
    "Delgado",
    "Whitcombe",
)
PHYSICIAN_GIVEN = ("Amara", "Conrad", "Eliska", "Fernando", "Helena", "Ishaan", "Judith", "Lorenzo")


@dataclass
class Person:
    """A patient or a member of staff."""

    family: str
    given: str
    sex: str = "O"

    def phi(self, role: str, field: str, full: bool = False) -> list[tuple[str, str, str]]:
        """PHI triples ``(value, kind, field)`` for this name written to ``field``.

        Args:
            role: ``patient`` (kinds patient_family_name / patient_given_name / patient_name) or a staff
                role such as ``physician`` (kind ``<role>_name`` for every part).
            field: where the name was written.
            full: also record the free-text form ``Given Family``.
        """
        if role == "patient":
            kinds = ("patient_family_name", "patient_given_name", "patient_name")
        else:
            kinds = (f"{role}_name",) * 3
        out = [(self.family, kinds[0], field), (self.given, kinds[1], field)]
        if full:
            out.append((self.full, kinds[2], field))
        return out

    @property
    def dicom(self) -> str:
        """DICOM PN form ``Family^Given``."""
        return f"{self.family}^{self.given}"

    @property
    def full(self) -> str:
        """Free-text form ``Given Family``."""
        return f"{self.given} {self.family}"


@dataclass
class Patient:
    """A synthetic patient with all identifying attributes."""

    index: int
    person: Person
    mrn: str
    ssn: str
    birth_date: dt.date
    street: str
    postal_code: str
    phone: str
    city_state: str = ""
    conditions: list[str] = field(default_factory=list)

    @property
    def address_dicom(self) -> str:
        """Single-line address as written to DICOM PatientAddress."""
        return f"{self.street}, {self.city_state} {self.postal_code}"


def make_physicians(rng: np.random.Generator, count: int = 4) -> list[Person]:
    """Return ``count`` distinct physicians of one hospital."""
    families = rng.choice(len(PHYSICIAN_FAMILY), size=count, replace=False)
    givens = rng.choice(len(PHYSICIAN_GIVEN), size=count, replace=False)
    return [Person(PHYSICIAN_FAMILY[f], PHYSICIAN_GIVEN[g]) for f, g in zip(families, givens, strict=True)]


def make_patients(rng: np.random.Generator, style: SiteStyle, count: int) -> list[Patient]:
    """Draw ``count`` patients with unique MRNs and unique names."""
    patients: list[Patient] = []
    used_mrn: set[str] = set()
    used_names: set[tuple[str, str]] = set()
    for index in range(count):
        sex = "F" if rng.random() < style.female_fraction else "M"
        person = _unique_person(rng, sex, used_names)
        mrn = _unique_mrn(rng, style, used_mrn)
        age = float(np.clip(rng.normal(style.age_mean, style.age_sd), 22, 94))
        birth = dt.date(2023, 1, 1) - dt.timedelta(days=int(age * 365.25) + int(rng.integers(0, 365)))
        number = int(rng.integers(11, 9899))
        street = f"{number} {STREETS[int(rng.integers(len(STREETS)))]}"
        postal = f"{style.zip_prefix}{int(rng.integers(10, 99)):02d}"
        phone = f"({style.area_code}) 555-{int(rng.integers(1000, 9999)):04d}"
        ssn = _ssn(rng)
        patients.append(
            Patient(
                index,
                person,
                mrn,
                ssn,
                birth,
                street,
                postal,
                phone,
                city_state=f"{style.city}, {style.state}",
            )
        )
    return patients


def _ssn(rng: np.random.Generator) -> str:
    """A US SSN-shaped number in the 9xx area (never issued as an SSN)."""
    area, group, serial = (int(rng.integers(lo, hi)) for lo, hi in ((900, 999), (70, 99), (1000, 9999)))
    return f"{area}-{group:02d}-{serial:04d}"


def _unique_person(rng: np.random.Generator, sex: str, used: set[tuple[str, str]]) -> Person:
    givens = GIVEN_FEMALE if sex == "F" else GIVEN_MALE
    while True:
        family = FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))]
        given = givens[int(rng.integers(len(givens)))]
        if (family, given) not in used or len(used) >= len(FAMILY_NAMES) * len(givens):
            used.add((family, given))
            return Person(family, given, sex)


def _unique_mrn(rng: np.random.Generator, style: SiteStyle, used: set[str]) -> str:
    digits = style.mrn_digits
    while True:
        # a leading digit >= 2 keeps MRNs from matching the 1xxxxxx UID serials
        mrn = style.mrn_format.format(int(rng.integers(2 * 10 ** (digits - 1), 10**digits)))
        if mrn not in used:
            used.add(mrn)
            return mrn
