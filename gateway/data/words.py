"""Faker's zh_CN word lists as arrays, read once at their first use: importing faker costs
about 0.15 s of CPU, which a gateway that has neither built demo data nor synthesized a value
should not pay (`gateway serve` imports the modules that use them)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True)
class FakerWords:
    """The lists as Faker gives them (same order), as NumPy arrays."""

    surnames: npt.NDArray[np.str_]
    surname_weights: npt.NDArray[np.float64]
    given: npt.NDArray[np.str_]
    cities: npt.NDArray[np.str_]
    street_suffixes: npt.NDArray[np.str_]
    company_prefixes: npt.NDArray[np.str_]
    company_suffixes: npt.NDArray[np.str_]


@functools.cache
def faker_words() -> FakerWords:
    """The word lists (read from faker on the first call, the same arrays afterwards)."""
    import numpy as np
    from faker.providers.address.zh_CN import Provider as AddressProvider
    from faker.providers.company.zh_CN import Provider as CompanyProvider
    from faker.providers.person.zh_CN import Provider as PersonProvider

    return FakerWords(
        surnames=np.array(list(PersonProvider.last_names.keys())),
        surname_weights=np.array(list(PersonProvider.last_names.values()), dtype=np.float64),
        given=np.array(PersonProvider.first_names),
        cities=np.array(AddressProvider.cities),
        street_suffixes=np.array(AddressProvider.street_suffixes),
        company_prefixes=np.array(CompanyProvider.company_prefixes),
        company_suffixes=np.array(CompanyProvider.company_suffixes),
    )
