# The cluster's WebDAV space (SPEC section 8) passes litmus, the WebDAV
# server test suite, wherever mod_dav_fs does.  litmus runs first against
# a plain httpd with mod_dav_fs (the reference), then against three nodes
# with `DAV clusterstorage` behind a round-robin balancer (t/lib/CSFront.pm),
# so the consecutive requests of each litmus test land on different nodes.
# Every litmus test that passes on mod_dav_fs must pass on the cluster: one
# assertion per litmus test, "SUITE: NUM. NAME"; the others are skipped.
#
# CS_DAV_PROVIDER=filesystem runs the second half against ONE node with
# mod_dav_fs behind the same front instead (such nodes share nothing): a
# check of this harness itself (the parsing, the front, Destination through
# it), which must give the reference's results.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key node_status);
use CSNode;
use CSHttpd;
use CSFront;
use CSLitmus;

my $PROVIDER = $ENV{CS_DAV_PROVIDER} || 'clusterstorage';
my @SUITES = @CSLitmus::SUITES;
my $WORK = "$ENV{CS_STATE_DIR}/litmus";
# Failures that get a debug.log excerpt (the others get their reason).
my $EXCERPTS = 12;
# Seconds for all the suites of one litmus run together.
my $LITMUS_TIMEOUT = 300;

unless (ok -x $CSLitmus::LITMUS, "litmus is installed ($CSLitmus::LITMUS)") {
    diag 'scripts/deps.sh installs it (Debian package litmus)';
    done_testing;
    exit;
}

# fresh_collection(BASE, WHAT) -> the URL of a new collection under BASE
# (a URL ending in "/"), for one litmus run (litmus works in URL/litmus/
# and needs URL to exist) or another test.
sub fresh_collection {
    my ($base, $what) = @_;
    my $url = $base . unique_key('litmus') . '/';
    my $r = req(MKCOL => $url);
    is $r->code, 201, "MKCOL of a fresh collection $what"
        or diag $r->as_string;
    return $url;
}

# A litmus message with the collection it ran in replaced by "...", so
# that the messages of two runs compare.
sub generic {
    my ($msg, $url) = @_;
    my ($path) = $url =~ m{^https?://[^/]+(/.*)$};
    $msg =~ s/\Q$path\E/...\//g;
    return $msg;
}

# SUITE RESULT -> true if litmus finished the suite; says why not otherwise.
sub finished {
    my ($r, $what) = @_;
    return 1 if $r->{summary};
    (my $out = $r->{output} // '') =~ s/\r\n?/\n/g;
    $out = substr($out, -3000) if length $out > 3000;
    diag "$what $r->{suite}: litmus did not finish (exit $r->{rc}"
         . ($r->{rc} == 124 ? ', timed out' : '') . "):\n$out";
    return 0;
}

# ---- (a) the reference: a plain httpd with mod_dav_fs.
my $ref = CSHttpd->new('fs50', template => 'davfs.conf.tmpl',
                       dirs => [qw(dav htdocs)])->start;
my $ref_url = fresh_collection($ref->url . '/dav/', 'on mod_dav_fs');
my %ref = map { $_->{suite} => $_ }
          @{ CSLitmus::run($ref_url, "$WORK/mod_dav_fs",
                           timeout => $LITMUS_TIMEOUT) };
$ref->stop;
for my $s (@SUITES) {
    my $r = $ref{$s};
    ok finished($r, 'mod_dav_fs') && $r->{summary}{passed} > 0,
        "mod_dav_fs: litmus ran $s";
    my @odd = map { "$_->{num}. $_->{name} ($_->{result}"
                    . (@{ $_->{warnings} } ? ', warned: '
                       . join('; ', @{ $_->{warnings} }) : '') . ')' }
              grep { $_->{result} ne 'pass' || @{ $_->{warnings} } }
              @{ $r->{tests} };
    diag "mod_dav_fs $s: " . CSLitmus::counts($r)
         . (@odd ? "; not plain passes: " . join(', ', @odd) : '');
}

# ---- (b) the cluster: nodes with the DAV space, a front over them.
my @names = $PROVIDER eq 'filesystem' ? ('v50fs') : qw(v50a v50b v50c);
my (@nodes, $front);
my $up = eval {
    @nodes = map { CSNode->new($_, dav => $PROVIDER)->start } @names;
    $front = CSFront->new('f50', members => [ map { $_->url } @nodes ])
             ->start;
    1;
};
unless (ok $up, scalar(@names) . " node(s) with DAV $PROVIDER and a"
                . ' balancer in front of them start') {
    diag $@;
    done_testing;
    exit;
}
my $F = $front->url;

# The front really spreads: consecutive requests reach every node.
my %seen;
for (1 .. 2 * @nodes) {
    my $st = node_status($F);
    $seen{ $st ? $st->{node} : 'no answer' }++;
}
is_deeply [ sort keys %seen ], [ sort @names ],
    'consecutive requests through the front reach every node'
    or diag explain \%seen;

# COPY and MOVE through the front (the Destination names the front, the
# request lands on any node), before litmus does the same at length.
{
    my $d = fresh_collection("$F/dav/", 'through the front');
    my $body = "copy and move through the front\n";
    is req(PUT => "${d}a.txt", $body)->code, 201, 'PUT through the front';
    my $r = req(COPY => "${d}a.txt", undef, Destination => "${d}b.txt");
    is $r->code, 201, 'COPY through the front is 201' or diag $r->as_string;
    $r = req(MOVE => "${d}b.txt", undef, Destination => "${d}c.txt");
    is $r->code, 201, 'MOVE through the front is 201' or diag $r->as_string;
    my @get = map { req(GET => "${d}$_.txt") } qw(a b c);
    is_deeply [ map { $_->code } @get ], [ 200, 404, 200 ],
        'then the source is there, the moved copy gone, the target there';
    is $get[2]->content, $body, 'with the bytes';
}

my $url = fresh_collection("$F/dav/", 'for litmus through the front');
my %got = map { $_->{suite} => $_ }
          @{ CSLitmus::run($url, "$WORK/cluster", timeout => $LITMUS_TIMEOUT) };

my ($path) = $url =~ m{^https?://[^/]+(/.*)$};
my $failed = 0;
for my $s (@SUITES) {
    my ($want, $have) = ($ref{$s}, $got{$s});
    finished($have, 'cluster');
    my %have = map { ("$_->{num} $_->{name}" => $_) } @{ $have->{tests} };
    for my $t (@{ $want->{tests} }) {
        my $label = "$s: $t->{num}. $t->{name}";
        my $h = $have{"$t->{num} $t->{name}"};
      SKIP: {
            skip "$label: $t->{result} on mod_dav_fs", 1
                unless $t->{result} eq 'pass';
            unless (ok $h && $h->{result} eq 'pass', $label) {
                diag "$label: " . ($h ? $h->{result} : 'not run')
                     . ($h && $h->{reason} ? " ($h->{reason})" : '');
                diag "debug.log of $label:\n"
                     . CSLitmus::debug_excerpt($have, $h)
                    if $h && ++$failed <= $EXCERPTS;
            }
        }
        # New warnings: not asserted (the test passes), but worth knowing.
        my %old = map { generic($_, $ref_url) => 1 } @{ $t->{warnings} };
        diag "$label warned on the cluster: $_"
            for grep { !$old{ generic($_, $url) } }
                $h ? @{ $h->{warnings} } : ();
    }
    diag "$s: mod_dav_fs " . CSLitmus::counts($want)
         . "; cluster " . CSLitmus::counts($have);
}
diag "debug.log excerpts for the first $EXCERPTS failures only"
    if $failed > $EXCERPTS;

# litmus's own requests were spread over the nodes too.
my $by = $front->served_by(qr{^\Q$path\E});
is scalar(grep { $by->{$_} } $front->members), scalar(@nodes),
    'the front sent litmus requests to every node' or diag explain $by;

if (!Test::More->builder->is_passing) {
    # X-Front-Member in debug.log names the node that answered.
    diag "front member $_->{name}: " . $_->url for @nodes;
    diag "error_log of $_->{name}:\n" . $_->log_tail(30) for @nodes;
    diag "error_log of the front:\n" . $front->log_tail(30);
}

done_testing;
