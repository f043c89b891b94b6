"""Cluster membership: quality cuts, KDE centroid, error-deconvolved mixture, bootstrap, King."""

from tgpcore.membership.finder import MembershipConfig, MembershipResult, find_members
from tgpcore.membership.kde import KDEDetection, NoOverdensityError, detect_cluster
from tgpcore.membership.king import KingFit, fit_king, king_cumulative, king_density, king_r50
from tgpcore.membership.products import write_membership_products
from tgpcore.membership.quality import QualityCuts

__all__ = [
    "KDEDetection", "KingFit", "MembershipConfig", "MembershipResult", "NoOverdensityError",
    "QualityCuts", "detect_cluster", "find_members", "fit_king", "king_cumulative",
    "king_density", "king_r50", "write_membership_products",
]
