from django.contrib import admin

from labeling.models import Membership, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "language_code", "created_at"]
    search_fields = ["name", "language_code"]
    inlines = [MembershipInline]
