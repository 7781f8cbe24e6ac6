# Runs last: whatever the earlier files did to the nodes under t/storage
# (kills, full disks, bad peers, outages, concurrent writers), no temporary
# file stayed behind in any node's .clusterstorage/tmp, and the registry
# holds no placeholder row of a write that was never committed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(wait_for sql);

my $REPO = $ENV{CS_REPO} or die "CS_REPO is not set (run via scripts/test.sh)";
my @dirs = glob("$REPO/t/storage/*/.clusterstorage/tmp");
ok @dirs >= 1, scalar(@dirs) . ' node root(s) to look at';

sub leftovers {
    my @f;
    for my $d (@dirs) {
        opendir my $dh, $d or next;
        push @f, map { "$d/$_" } grep { !/^\./ } readdir $dh;
    }
    return @f;
}
# The main server (n1) is still running: give a write in flight its moment.
ok wait_for(15, sub { !leftovers() }), 'no temporary file in any node root'
    or diag join "\n", leftovers();

is sql('SELECT COUNT(*) FROM cs_files WHERE version = 0'), '0',
    'no placeholder row left in cs_files';
is sql('SELECT COUNT(*) FROM cs_replicas r LEFT JOIN cs_files f'
       . ' ON f.path = r.path WHERE f.path IS NULL'), '0',
    'no replica row without its file row';

done_testing;
