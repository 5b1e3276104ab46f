#!/usr/bin/perl
# Verify the DKIM signatures of the message on stdin with Mail::DKIM, an
# implementation independent of dkimpy, without touching the network.
#
# usage: perl tests/dkim_verify.pl ZONE_FILE < message.eml
#
# ZONE_FILE holds zone-file TXT lines as printed by mailhub.dkimkeys.dns_records;
# Net::DNS parses them (so the published record syntax, split strings in
# parentheses included, is what is tested) and a stub resolver answers
# Mail::DKIM's key queries from them. Prints one line per signature:
#   <result> <a=> <d=> <s=> <detail>
# e.g. "fail rsa-sha256 example.gov.vn mailhub fail (body has been altered)";
# result is Mail::DKIM's: pass, fail, invalid, none...
use strict;
use warnings;

use Mail::DKIM::Verifier;
use Net::DNS;

package StubResolver;

sub new {
    my ( $class, @rrs ) = @_;
    return bless { rrs => \@rrs }, $class;
}

# Mail::DKIM::DNS::query calls send($name, $type) and reads rcode and answers.
sub send {
    my ( $self, $name, $type ) = @_;
    my $packet = Net::DNS::Packet->new( $name, $type );
    $packet->header->qr(1);
    my @answers = grep { lc( $_->owner ) eq lc($name) && $_->type eq $type } @{ $self->{rrs} };
    $packet->push( answer => @answers );
    $packet->header->rcode( @answers ? 'NOERROR' : 'NXDOMAIN' );
    return $packet;
}

sub errorstring { return 'NOERROR' }

package main;

my $zone_file = shift @ARGV or die "usage: $0 ZONE_FILE < message\n";
open my $zone, '<', $zone_file or die "cannot read $zone_file: $!\n";
my @rrs = map { Net::DNS::RR->new($_) } grep { /\S/ } <$zone>;
close $zone;
Mail::DKIM::DNS::resolver( StubResolver->new(@rrs) );

binmode STDIN;
my $dkim = Mail::DKIM::Verifier->new();
while ( my $chunk = <STDIN> ) {
    $dkim->PRINT($chunk);
}
$dkim->CLOSE;

my @signatures = $dkim->signatures;
print "none\n" unless @signatures;
for my $sig (@signatures) {
    printf "%s %s %s %s %s\n", $sig->result, $sig->algorithm, $sig->domain, $sig->selector,
      $sig->result_detail;
}
